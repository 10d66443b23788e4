"""What the CLI prints never reaches a terminal as control characters from mail.

Subjects, addresses, ids and headers come from strangers: an ESC sequence in a
subject could recolour, retitle or rewrite the operator's terminal, a CR could
overwrite a line already printed. `clean` escapes every control character (C0, DEL,
C1, and the bidirectional overrides) as a visible `\\xNN` / `\\uNNNN`; `install`
puts the same escaping, keeping newlines and tabs, under stdout and stderr for the
whole command, so no printer can forget it. Fields that must stay on one line are
passed through `clean` as well (a newline in a subject must not forge a line).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *_BIDI]


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_FIELD = str.maketrans({code: _escape(code) for code in _CONTROLS})
_STREAM = str.maketrans({code: _escape(code) for code in _CONTROLS if chr(code) not in "\n\t"})


# JSON escapes C0 itself; DEL, C1 and the bidi overrides become \uNNNN, still valid JSON
_JSON = str.maketrans({code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F})


def json_text(text: str) -> str:
    """JSON (made with ensure_ascii=False) with no raw control character left in it."""
    return text.translate(_JSON)


def clean(value: Any) -> str:
    """One line of text safe for a terminal: every control character made visible."""
    return str(value).translate(_FIELD)


def clean_lines(text: str) -> str:
    """Text of several lines safe for a terminal: controls escaped, newlines and tabs kept."""
    return text.translate(_STREAM)


class SafeStream:
    """A text stream whose writes are escaped with `clean_lines` (stdout, stderr)."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(clean_lines(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding...
        return getattr(self.inner, name)


def install() -> tuple[TextIO, TextIO]:
    """Escape everything the command prints; returns the streams to put back."""
    saved = sys.stdout, sys.stderr
    sys.stdout = SafeStream(sys.stdout)
    sys.stderr = SafeStream(sys.stderr)
    return saved


def echo(text: Any = "", file: TextIO | None = None) -> None:
    """print() of one line made of mail data: every control character escaped."""
    print(clean(text), file=file or sys.stdout)
