"""Token lists -> hashed, log-counted, block-normalised sparse rows in a few numpy passes.

What `features.vectorize` computes, without a FeatureHasher and a scipy matrix per block
(their per-call checks cost more than the hashing: about 1 ms a message with four
blocks, a third of scoring one). Every token of every row is hashed once (scikit-learn's
murmurhash, as FeatureHasher does: the block widths are powers of two, so a block's
column is the 2^20 column masked), its block is read from its first two bytes, and the
rows are built from one sort of (row, column) keys. The arithmetic is the same as the
per-block construction, step by step and in the same order (counts in float32, log1p,
scikit-learn's L2 normalisation per block, the weight, then per row), so the rows are
bit-identical to it (tests/unit/training/test_training_vectors_identity.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction._hashing_fast import transform as _murmur_columns
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

HASH_BITS = 20
WORDS, CHARS, EXTRA, RAW, DROPPED = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Layout:
    """Blocks of a features version: the prefix of the tokens that go to each (words
    take the rest), its width (a power of two up to 2^20) and weight, in column order."""

    widths: tuple[int, ...]  # WORDS, CHARS, EXTRA, RAW (as many as the version has)
    weights: tuple[float, ...]
    prefixes: tuple[tuple[bytes, int], ...]  # (two-byte prefix, block or DROPPED)
    blocks_normalised: bool  # False: one block, normalised once (mw-features-1)

    @property
    def n_features(self) -> int:
        return sum(self.widths)


@dataclass
class Rows:
    """CSR arrays without a scipy matrix (whose constructor's checks cost more than
    scoring's arithmetic on one row): what scikit-learn's in-place L2 normalisation and
    SpamModel's linear decision read. `csr()` makes the matrix."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    def csr(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (self.data, self.indices.astype(np.int32), self.indptr.astype(np.int32)),
            shape=self.shape,
        )


@functools.cache
def _tables(layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per block (DROPPED included): first column, column mask, weight; per column
    block: first column (for searchsorted)."""
    blocks = len(layout.widths)
    offsets = np.cumsum((0, *layout.widths[:-1]), dtype=np.int64)
    offset_of = np.zeros(DROPPED + 1, dtype=np.int64)
    offset_of[:blocks] = offsets
    mask_of = np.zeros(DROPPED + 1, dtype=np.int64)
    mask_of[:blocks] = np.asarray(layout.widths, dtype=np.int64) - 1
    weight_of = np.asarray(layout.weights, dtype=np.float32)
    return offset_of, mask_of, weight_of, offsets


def hashed_rows(
    token_lists: Sequence[list[str]],
    layout: Layout,
    grams: Sequence[np.ndarray | None] | None = None,
) -> sp.csr_matrix:
    """One float32 CSR row per token list (`grams`: sorted distinct RAW-block columns,
    features3.raw_grams, binary)."""
    return row_arrays(token_lists, layout, grams).csr()


def row_arrays(
    token_lists: Sequence[list[str]],
    layout: Layout,
    grams: Sequence[np.ndarray | None] | None = None,
) -> Rows:
    """hashed_rows' rows as arrays (int64 indices and indptr)."""
    rows = len(token_lists)
    if grams is not None and len(grams) != rows:
        raise ValueError("one grams array per token list")
    n_cols = layout.n_features
    offset_of, mask_of, weight_of, offsets = _tables(layout)
    flat = list(chain.from_iterable(token_lists))
    # tokens: (row, column) keys, sorted; equal keys counted
    columns, _, _ = _murmur_columns((zip(flat, repeat(1)),), 2**HASH_BITS, np.float32, False, 0)
    block = _blocks(flat, layout)
    key = offset_of[block] + (columns & mask_of[block])
    if rows > 1:
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=rows)
        key += np.repeat(np.arange(rows, dtype=np.int64) * n_cols, lengths)
    if layout.prefixes:
        key = key[block != DROPPED]
    key.sort()
    fresh = np.empty(key.size, dtype=bool)
    fresh[:1] = True
    np.not_equal(key[1:], key[:-1], out=fresh[1:])
    starts = np.flatnonzero(fresh)
    data = np.log1p(np.diff(starts, append=key.size).astype(np.float32))
    key = key[starts]
    # raw byte 4-grams: binary, the last block, already sorted and distinct per row
    if grams is not None and len(layout.widths) > RAW:
        present = [g for g in grams if g is not None]
        if present:
            raw = np.concatenate(present).astype(np.int64) + offsets[RAW]
            if rows > 1:
                sizes = [0 if g is None else g.size for g in grams]
                raw += np.repeat(np.arange(rows, dtype=np.int64) * n_cols, sizes)
            key = np.concatenate((key, raw))
            data = np.concatenate((data, np.ones(raw.size, dtype=np.float32)))
            if rows > 1:  # rows in order again (stable: columns stay sorted within)
                order = np.argsort(key // n_cols, kind="stable")
                key, data = key[order], data[order]
    # where each (row, block) starts: keys are sorted by row, then column
    firsts = (np.arange(rows, dtype=np.int64)[:, None] * n_cols + offsets[None, :]).ravel()
    segments = np.append(np.searchsorted(key, firsts), key.size)
    indptr = segments[:: offsets.size]
    if layout.blocks_normalised:
        inplace_csr_row_normalize_l2(Rows(data, key, segments, (segments.size - 1, n_cols)))
        if rows == 1:
            for index, weight in enumerate(layout.weights):
                if weight != 1.0:
                    data[segments[index] : segments[index + 1]] *= np.float32(weight)
        else:
            data *= np.repeat(np.tile(weight_of, rows), np.diff(segments))
    out = Rows(data, key, indptr, (rows, n_cols))
    inplace_csr_row_normalize_l2(out)
    if rows > 1:
        key -= np.repeat(np.arange(rows, dtype=np.int64) * n_cols, np.diff(indptr))
    return out


def _blocks(tokens: list[str], layout: Layout) -> np.ndarray:
    """Block of each token from its first two bytes (one join, no loop per token)."""
    block = np.zeros(len(tokens), dtype=np.intp)
    if not layout.prefixes or not tokens:
        return block
    text = "\x00" + "\x00".join(tokens) + "\x00\x00"
    joined = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    starts = np.flatnonzero(joined == 0)[:-2] + 1
    if starts.size != len(tokens):  # a token holds NUL: look at each one
        for prefix, target in layout.prefixes:
            text = prefix.decode()
            block[[i for i, t in enumerate(tokens) if t.startswith(text)]] = target
        return block
    first, second = joined[starts], joined[starts + 1]
    for prefix, target in layout.prefixes:
        block[(first == prefix[0]) & (second == prefix[1])] = target
    return block
