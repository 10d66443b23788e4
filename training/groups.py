"""Score groups: mail whose scores sit on a scale of their own (one offset per group).

Out of fold, the model ranks Chinese mail and headerless mail (the Enron corpus: a
Subject line and a body) well within their own group, but their scores are not on the
scale of mail with headers: at one global 0.01% threshold trec06c's spam is caught far
less often than at trec06c's own 0.01% point (docs/classifier.md). Each group with
enough out-of-fold ham therefore gets an offset, added to its scores, that puts its own
0.01% point where the pooled one is (training.train). The group is read from the
message itself (script of the body, presence of headers), never from the corpus name.
"""

from __future__ import annotations

from collections.abc import Sequence

CJK, HEADERLESS, OTHER = "cjk", "headerless", "other"
GROUPS = (CJK, HEADERLESS, OTHER)
MIN_GROUP_HAM = 2000  # fewer out-of-fold ham: no offset of its own (0)


def words_text(tokens: Sequence[str]) -> str:
    """The body words of a token list (prefixed tokens are not words)."""
    return " ".join(t for t in tokens[:2000] if ":" not in t and "." not in t)


def group_of(tokens: Sequence[str]) -> str:
    """CJK body text, else no headers but Subject, else the rest.

    CJK: at least 30% of the first 400 tokens end in a CJK character (the features turn
    CJK text into character unigrams and bigrams, so such mail is nearly all of them).
    Cheap on purpose (no language guess: it runs for every message scored).
    """
    sample = tokens[:400]
    cjk = sum(1 for t in sample if t and "\u3040" <= t[-1] <= "\ud7af")
    if sample and cjk >= 0.3 * len(sample):
        return CJK
    if "hdr:subject_only" in tokens:
        return HEADERLESS
    return OTHER
