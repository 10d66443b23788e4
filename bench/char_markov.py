"""A hashed byte-level Markov model per class (a Bratko-style compression base, sixth round).

Bratko et al. (TREC 2005-2007) classified mail by which class's adaptive compression
model (PPM, DMC) encodes it in fewer bits. This is the static, vectorised cousin used by
bench/classifier_stacking.py: for each class, counts of (context, next byte) for every
context length 0..ORDER over the raw view of the message (training.features3.raw_view:
content headers and the body as sent, digits as 0), hashed into fixed tables; the
probability of a byte blends the orders from the shortest up (interpolated Dirichlet
smoothing: P_o(x) = (c_o(ctx, x) + beta * P_{o-1}(x)) / (n_o(ctx) + beta), P_{-1} = 1/256),
and a message's score is its mean log-likelihood ratio per byte, spam against ham (the
difference of its cross-entropies under the two models, as Bratko's minimum
cross-entropy rule). Counts add up, so the model without some folds is the total minus
those folds' tables: the nested out-of-fold scores cost one counting pass.

Pure numpy; no project imports, so the unit tests load it on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ORDER = 5
PAIR_BITS = 23
CTX_BITS = 22
START = 256  # the value before a message's first byte (outside the byte range)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SEED = np.uint64(0xD6E8FEB86659FD93)


def pack(views: Sequence[bytes], order: int = ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Views end to end, each preceded by `order` START values: (values int64, message
    index of every value, -1 for the START padding)."""
    lengths = np.fromiter((len(v) for v in views), dtype=np.int64, count=len(views))
    total = int(lengths.sum()) + order * len(views)
    values = np.full(total, START, dtype=np.int64)
    owner = np.full(total, -1, dtype=np.int64)
    index = np.repeat(np.arange(len(views), dtype=np.int64), lengths)
    where = np.arange(index.size, dtype=np.int64) + order * (index + 1)
    values[where] = np.frombuffer(b"".join(views), dtype=np.uint8)
    owner[where] = index
    return values, owner


def _hash(codes: np.ndarray, salt: int, bits: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = (codes.astype(np.uint64) + np.uint64(salt) * _SEED) * _MIX
    return (h >> np.uint64(64 - bits)).astype(np.int32)


def codes(values: np.ndarray, order: int = ORDER) -> list[tuple[np.ndarray, np.ndarray]]:
    """For every real position (values >= 0 and < START, i.e. from `order` on), per
    context length o = 0..order: (hashed (context, byte) cell, hashed context cell).

    Contexts are exact base-257 numbers of the o previous values (START included) before
    hashing, so only the table size makes two contexts share a cell."""
    real = real_positions(values, order)
    x = values[real]
    out = []
    ctx = np.zeros(real.size, dtype=np.int64)
    for o in range(order + 1):
        if o:
            ctx = ctx * 257 + values[real - o]
        out.append((_hash(ctx * 257 + x, 2 * o + 1, PAIR_BITS), _hash(ctx, 2 * o + 2, CTX_BITS)))
    return out


def real_positions(values: np.ndarray, order: int = ORDER) -> np.ndarray:
    """Indices of the real bytes (the positions `codes` describes, in the same order)."""
    return np.flatnonzero(values[order:] != START) + order


def count(
    cells: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Count tables (pair, context) per order of the positions in `mask`."""
    return [
        (
            np.bincount(pair[mask], minlength=2**PAIR_BITS).astype(np.int32),
            np.bincount(ctx[mask], minlength=2**CTX_BITS).astype(np.int32),
        )
        for pair, ctx in cells
    ]


def log_probs(
    cells: list[tuple[np.ndarray, np.ndarray]],
    tables: list[tuple[np.ndarray, np.ndarray]],
    beta: float = 2.0,
) -> list[np.ndarray]:
    """Natural log of each position's probability under one class's tables, for every
    top order o (orders 0..o blended from the shortest up): element o of the list."""
    out = []
    p = np.full(cells[0][0].size, 1.0 / 256)
    for (pair, ctx), (pairs, ctxs) in zip(cells, tables, strict=True):
        c = pairs[pair].astype(np.float64)
        n = ctxs[ctx].astype(np.float64)
        p = (c + beta * p) / (n + beta)
        out.append(np.log(p))
    return out


def log_prob(
    cells: list[tuple[np.ndarray, np.ndarray]],
    tables: list[tuple[np.ndarray, np.ndarray]],
    beta: float = 2.0,
    order: int | None = None,
) -> np.ndarray:
    """log_probs' element for one top order (None: the highest)."""
    top = len(cells) - 1 if order is None else order
    return log_probs(cells[: top + 1], tables[: top + 1], beta)[top]


def message_means(values_per_position: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Mean of a per-position value over each message's positions (0 for an empty one)."""
    sums = np.bincount(owner, weights=values_per_position, minlength=n)
    counts = np.bincount(owner, minlength=n)
    return np.divide(sums, counts, out=np.zeros(n), where=counts > 0)
