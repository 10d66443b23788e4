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

import numpy as np

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
    if sample and _ending_in_cjk(sample) >= 0.3 * len(sample):
        return CJK
    if "hdr:subject_only" in tokens:
        return HEADERLESS
    return OTHER


def _ending_in_cjk(tokens: Sequence[str]) -> int:
    """How many tokens end in U+3040..U+D7AF: the last code point before each separator
    of the joined tokens (numpy; a generator over 400 tokens cost more than the rest)."""
    text = "\x00" + "\x00".join(tokens) + "\x00"
    if text.isascii():  # no CJK at all (str.isascii reads a flag: no scan)
        return 0
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ends = np.flatnonzero(points == 0)
    if ends.size != len(tokens) + 1:  # a token holds NUL
        return sum(1 for t in tokens if t and "\u3040" <= t[-1] <= "\ud7af")
    last = points[ends[1:] - 1]  # a separator itself when the token is empty
    return int(np.count_nonzero((last >= 0x3040) & (last <= 0xD7AF)))
