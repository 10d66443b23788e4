"""Archive bombs, found from what archives declare, without unpacking them.

clamd stops unpacking at its limits, and with AlertExceedsMax says so; but some
shapes pass its limits silently (a 2 KB zip declaring 1 GiB of zeros). This is a
second check for the archive types we can read cheaply: zip (its central
directory: sizes as declared, nothing decompressed except nested archives small
enough to open) and gzip (the ISIZE trailer). A finding makes the part
"not fully scanned", which the mailbox's policy then handles (quarantine by default).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"


_UNREADABLE = (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError)


@dataclass(frozen=True)
class ArchiveLimits:
    max_expanded: int = 1 << 30  # declared bytes inside, in all: more is a bomb whatever the ratio
    max_ratio: float = 100.0  # expanded / compressed, above `ratio_floor` expanded bytes
    ratio_floor: int = 10 << 20
    max_nesting: int = 5  # archives inside archives
    max_members: int = 10_000
    max_nested_read: int = 20 << 20  # a nested archive larger than this is not opened
    max_read: int = 64 << 20  # bytes decompressed to look into nested archives, in all
    max_peeked: int = 1000  # members whose first bytes are read to find nested archives


def archive_bomb(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> str | None:
    """Why `data` is an archive bomb, in words, or None (also for non-archives)."""
    return _inspect(data, limits, depth=0, budget=[limits.max_expanded, limits.max_read])


def _inspect(data: bytes, limits: ArchiveLimits, depth: int, budget: list[int]) -> str | None:
    if depth > limits.max_nesting:
        return f"archives nested deeper than {limits.max_nesting}"
    if data[:4] in ZIP_MAGIC:
        return _zip(data, limits, depth, budget)
    if data[:2] == GZIP_MAGIC and len(data) >= 18:
        expanded = int.from_bytes(data[-4:], "little")  # ISIZE: size mod 2^32
        return _sizes(expanded, len(data), limits, budget, "gzip")
    return None


def _zip(data: bytes, limits: ArchiveLimits, depth: int, budget: list[int]) -> str | None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except _UNREADABLE:
        return None  # not readable by us: clamd's verdict stands
    if len(members) > limits.max_members:
        return f"zip with more than {limits.max_members} members"
    expanded = sum(m.file_size for m in members)
    compressed = sum(m.compress_size for m in members) or 1
    found = _sizes(expanded, compressed, limits, budget, "zip")
    if found:
        return found
    for member in members[: limits.max_peeked]:
        if not 18 <= member.file_size <= min(limits.max_nested_read, budget[1]):
            continue
        try:
            with archive.open(member) as fh:
                head = fh.read(4)
                if head[:4] not in ZIP_MAGIC and head[:2] != GZIP_MAGIC:
                    continue
                inner = head + fh.read(member.file_size)
        except (
            zipfile.BadZipFile,
            ValueError,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ):
            continue  # encrypted or broken: clamd's (AlertEncrypted) to judge
        budget[1] -= len(inner)
        found = _inspect(inner, limits, depth + 1, budget)
        if found:
            return f"{member.filename}: {found}"
    return None


def _sizes(
    expanded: int, compressed: int, limits: ArchiveLimits, budget: list[int], kind: str
) -> str | None:
    budget[0] -= expanded
    if budget[0] < 0:
        return f"{kind} expanding to more than {limits.max_expanded} bytes"
    ratio = expanded / max(compressed, 1)
    if expanded > limits.ratio_floor and ratio > limits.max_ratio:
        return f"{kind} compression ratio {ratio:.0f}:1"
    return None
