"""Memory snapshots on demand, for finding what grows (docs/performance.md).

With MAILWARDEN_MEMTRACE=DIR in its environment, each SIGUSR2 makes a gateway
process write DIR/<pid>-<n>.census: its largest dicts, sets, lists and deques
(length, a few keys, who holds them). The first signal also starts tracemalloc
(MAILWARDEN_MEMTRACE_FRAMES deep, default 10; 0: never) and each later one writes
DIR/<pid>-<n>.tracemalloc; compare two with `python -m gateway.monitor.memtrace
OLD NEW`. Tracing starts on the first signal, not at start-up: tracing the model
loading takes minutes, and only what grows afterwards is of interest. Off unless
the variable is set.
"""

from __future__ import annotations

import collections
import gc
import itertools
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

ENV = "MAILWARDEN_MEMTRACE"
LARGE = 1000  # containers with at least this many items are listed


def install() -> bool:
    """The SIGUSR2 handler, when the environment asks for it."""
    directory = os.environ.get(ENV)
    if not directory:
        return False
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(1)

    def dump(signum: int, frame: object) -> None:
        n = next(counter)
        base = out / f"{os.getpid()}-{n}"
        base.with_suffix(".census").write_text(census())
        frames = int(os.environ.get(f"{ENV}_FRAMES", "10"))
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(base.with_suffix(".tracemalloc")))
        elif frames:
            tracemalloc.start(frames)

    signal.signal(signal.SIGUSR2, dump)
    return True


def _holders(obj: Any) -> str:
    names = []
    for ref in gc.get_referrers(obj)[:6]:
        if isinstance(ref, dict):
            keys = [k for k, v in ref.items() if v is obj][:2]
            names.append(f"dict[{keys!r}]")
        elif not isinstance(ref, list | type(sys._getframe())):
            names.append(type(ref).__qualname__)
    return ", ".join(names)


def census(large: int = LARGE) -> str:
    """The containers with at least `large` items, longest first. A dict of only
    strings and numbers is not tracked by the collector (gc.get_objects misses it):
    those are found among what the tracked objects refer to."""
    kinds = (dict, set, frozenset, list, collections.deque)
    tracked = gc.get_objects()
    seen = {id(o): o for o in tracked if isinstance(o, kinds) and len(o) >= large}
    for holder in tracked:
        for o in gc.get_referents(holder):
            if isinstance(o, kinds) and not gc.is_tracked(o) and len(o) >= large:
                seen[id(o)] = o
    del tracked
    lines = []
    for obj in sorted(seen.values(), key=len, reverse=True)[:40]:
        sample = list(itertools.islice(iter(obj), 3))
        lines.append(
            f"{type(obj).__name__} len={len(obj)} sample={repr(sample)[:160]} "
            f"held_by={_holders(obj)[:200]}"
        )
    return "\n".join(lines) + "\n"


def compare(old: Path, new: Path, top: int = 15) -> str:
    """The allocation sites (by traceback) that grew most from `old` to `new`."""
    before = tracemalloc.Snapshot.load(str(old))
    after = tracemalloc.Snapshot.load(str(new))
    lines = []
    for stat in after.compare_to(before, "traceback")[:top]:
        lines.append(f"{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
        lines += [f"    {line}" for line in stat.traceback.format()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(compare(Path(sys.argv[1]), Path(sys.argv[2])))
