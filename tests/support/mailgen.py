"""Generated labelled mail for classifier tests (never corpus files)."""

from __future__ import annotations

import random
from email.message import EmailMessage

SPAM_WORDS = [
    "viagra",
    "cheap",
    "pills",
    "discount",
    "offer",
    "winner",
    "prize",
    "casino",
    "bonus",
    "free",
    "money",
    "click",
    "unsubscribe",
    "limited",
    "lottery",
    "cash",
    "loan",
    "mortgage",
    "rates",
    "pharmacy",
    "replica",
    "watches",
    "guaranteed",
    "million",
    "dollars",
    "urgent",
    "verify",
    "account",
    "password",
    "bank",
]
HAM_WORDS = [
    "meeting",
    "agenda",
    "project",
    "schedule",
    "review",
    "report",
    "quarterly",
    "budget",
    "team",
    "lunch",
    "thanks",
    "attached",
    "draft",
    "comments",
    "tomorrow",
    "colleague",
    "patch",
    "release",
    "build",
    "test",
    "deploy",
    "conference",
    "minutes",
    "proposal",
    "contract",
    "invoice",
    "regards",
    "question",
]
COMMON = [
    "the",
    "a",
    "and",
    "to",
    "of",
    "in",
    "for",
    "on",
    "with",
    "is",
    "this",
    "that",
    "you",
    "we",
    "it",
    "please",
]


def make_message(spam: bool, rng: random.Random, index: int = 0) -> bytes:
    """A plausible message whose words lean spam or ham; varied so none are duplicates."""
    vocab = SPAM_WORDS if spam else HAM_WORDS
    words = [rng.choice(vocab if rng.random() < 0.5 else COMMON) for _ in range(60)]
    words += [f"w{rng.randrange(10**6)}x" for _ in range(8)]  # unique words: no near-dups
    msg = EmailMessage()
    msg["From"] = "Promo <deals@offers.example>" if spam else "Ann <ann@corp.example>"
    msg["To"] = "bob@corp.example"
    msg["Subject"] = " ".join(rng.choice(vocab) for _ in range(4))
    msg["Message-ID"] = f"<{index}.{rng.randrange(10**9)}@{'offers' if spam else 'corp'}.example>"
    if spam:
        msg["Reply-To"] = "claims@elsewhere.example"
    body = " ".join(words)
    if spam:
        msg.set_content(
            f"<html><body><p>{body}</p><a href='http://win.example/x'>go</a></body></html>",
            subtype="html",
        )
    else:
        msg.set_content(body + "\n")
    return msg.as_bytes()


def labelled(n_ham: int, n_spam: int, seed: int = 1) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    out = [(0, make_message(False, rng, i)) for i in range(n_ham)]
    out += [(1, make_message(True, rng, n_ham + i)) for i in range(n_spam)]
    return out
