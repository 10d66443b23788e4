"""Where the project's data lives (rules/, shipped beside the code)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def rules_dir() -> Path:
    """rules/ of this checkout, or MAILWARDEN_RULES_DIR when installed elsewhere."""
    override = os.environ.get("MAILWARDEN_RULES_DIR")
    return Path(override) if override else _REPO / "rules"


def corpora_dir() -> Path:
    """Labelled public mail for training and evaluation (never committed)."""
    return Path(os.environ.get("MAILWARDEN_CORPORA", _REPO.parent / "shared" / "corpora"))
