"""Which spool directory belongs to which worker process, and which a worker adopts.

With `[smtp] processes = N` each worker owns `ROOT/w<index>`; a single process owns
ROOT itself. After a change of N, the directories no worker owns any more are taken
over (modulo N), so no acknowledged mail is left behind.
"""

from __future__ import annotations

from pathlib import Path


def spool_dir(root: Path, index: int, count: int) -> Path:
    """Worker `index` of `count`: the root itself for a single process."""
    return root if count == 1 else root / f"w{index}"


def orphan_dirs(root: Path, index: int, count: int) -> list[Path]:
    """Spool directories of an earlier run that worker `index` takes over."""
    found: list[Path] = []
    if count > 1 and index == 0 and (root / "queue").is_dir():
        found.append(root)  # a single-process run before
    for child in sorted(root.glob("w*")):
        suffix = child.name[1:]
        if not suffix.isdigit() or not (child / "queue").is_dir():
            continue
        owner = int(suffix)
        if (count == 1 or owner >= count) and owner % count == index:
            found.append(child)
    return found


def all_spool_dirs(root: Path) -> list[Path]:
    """Every spool directory under `root` (for `mailwarden queue`)."""
    dirs = [root] if (root / "queue").is_dir() else []
    dirs += [d for d in sorted(root.glob("w*")) if (d / "queue").is_dir()]
    return dirs
