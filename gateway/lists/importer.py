"""Reading a published blocklist file: plain text or CSV of IPs, networks and domains.

Plain text is one value per line; `#` and `;` start comments, and a comment on
the line of a value becomes its reason (Spamhaus DROP: "192.0.2.0/24 ; SBL123").
CSV has the value in the first column and an optional reason in the second; a
header row is skipped. Every line that is not understood is reported with its
number; the caller decides whether that stops the import.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from gateway.lists.match import parse_value

HEADER_WORDS = {
    "ip",
    "ips",
    "address",
    "addr",
    "value",
    "network",
    "cidr",
    "domain",
    "entry",
    "host",
    "reason",
    "comment",
    "sender",
}


@dataclass(frozen=True)
class BadLine:
    line: int
    text: str
    problem: str


def _is_csv(path: Path, text: str) -> bool:
    if path.suffix.lower() == ".csv":
        return True
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", ";")):
            return "," in stripped
    return False


def parse_list_file(path: Path, text: str) -> tuple[list[tuple[str, str, str]], list[BadLine]]:
    """(kind, value, reason) entries and the bad lines of a published list."""
    entries: list[tuple[str, str, str]] = []
    bad: list[BadLine] = []
    if _is_csv(path, text):
        reader = csv.reader(io.StringIO(text))
        for row in reader:
            number = reader.line_num
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith(("#", ";")):
                continue
            if not entries and not bad and cells[0].lower() in HEADER_WORDS:
                continue  # a header row
            _take(cells[0], cells[1] if len(cells) > 1 else "", number, ",".join(row), entries, bad)
        return entries, bad
    for number, line in enumerate(text.splitlines(), start=1):
        content, reason = line, ""
        for mark in ("#", ";"):
            if mark in content:
                content, _, comment = content.partition(mark)
                reason = reason or comment.strip()
        content = content.strip()
        if not content:
            continue
        value, *rest = content.split()
        if rest:
            bad.append(BadLine(number, line.strip(), "more than one value on the line"))
            continue
        _take(value, reason, number, line.strip(), entries, bad)
    return entries, bad


def _take(
    value: str,
    reason: str,
    number: int,
    raw: str,
    entries: list[tuple[str, str, str]],
    bad: list[BadLine],
) -> None:
    try:
        kind, normalised = parse_value(value)
    except ValueError as exc:
        bad.append(BadLine(number, raw, str(exc)))
        return
    entries.append((kind, normalised, reason[:500]))
