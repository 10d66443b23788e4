"""The one escaping function: every control character visible, ordinary text untouched."""

from __future__ import annotations

import json

from gateway.cli.safe_text import clean, clean_lines, json_text


def test_controls_are_made_visible_and_text_is_kept():
    assert clean("a\x1b[31mb\rc\x07d\x9be\u202ef") == "a\\x1b[31mb\\x0dc\\x07d\\x9be\\u202ef"
    assert clean("Grüße, 東京 \\ ok") == "Grüße, 東京 \\ ok"
    assert clean("two\nlines\t") == "two\\x0alines\\x09"
    assert clean_lines("two\nlines\tand\x1b") == "two\nlines\tand\\x1b"


def test_json_stays_json_with_no_raw_controls():
    value = {"subject": "a\x1b[2J\x9b31m\u202eb"}
    text = json_text(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
