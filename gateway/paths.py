"""Where the project's data lives: rules/ in a checkout, gateway/rules_data in a wheel."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
PACKAGED_RULES = "rules_data"  # setup.py copies rules/ here when it builds a wheel


def rules_dir() -> Path:
    """MAILWARDEN_RULES_DIR if set, else the data shipped in the package, else the checkout's."""
    override = os.environ.get("MAILWARDEN_RULES_DIR")
    if override:
        return Path(override)
    packaged = resources.files("gateway") / PACKAGED_RULES
    if packaged.is_dir():
        return Path(str(packaged))
    return _REPO / "rules"


def corpora_dir() -> Path:
    """Labelled public mail for training and evaluation (never committed)."""
    return Path(os.environ.get("MAILWARDEN_CORPORA", _REPO.parent / "shared" / "corpora"))
