"""A fixed sample of real messages from every corpus in MAILWARDEN_CORPORA, for tests
that compare two readings of the same mail (read once per test process)."""

from __future__ import annotations

import itertools
from functools import cache

from gateway.paths import corpora_dir
from training.corpus import parse_spec, read_corpus


@cache
def corpus_sample(per_corpus: int = 200, step: int = 5) -> tuple[bytes, ...]:
    """Every `step`th of the first `per_corpus * step` messages of each corpus ( ()
    when there are no corpora: callers skip, saying where they looked)."""
    out: list[bytes] = []
    for path in sorted(corpora_dir().glob("*.tar.gz")):
        messages = read_corpus(parse_spec(str(path)))
        out.extend(m.raw for m in itertools.islice(messages, 0, per_corpus * step, step))
    return tuple(out)
