"""Write generated labelled messages as a corpus tar.gz (layout of ../shared/corpora)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.support.mailgen import labelled


def write_tar(path: Path, n_ham: int, n_spam: int, seed: int = 1) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for index, (label, raw) in enumerate(labelled(n_ham, n_spam, seed)):
            info = tarfile.TarInfo(f"{'spam' if label else 'ham'}/{index:05d}.eml")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path
