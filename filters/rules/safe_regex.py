"""Regular expressions written by domain admins, run in linear time (google-re2).

Python's `re` backtracks: a pattern like (a+)+$ against a long line of "a"s takes
exponential time and would stall the gateway. RE2 guarantees time linear in the
input, at the price of refusing back-references and look-around; such patterns
are refused here with an explanation an admin can act on.
"""

from __future__ import annotations

import re2

MAX_PATTERN_LENGTH = 2000
MAX_PROGRAM_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern

# RE2's own messages, and what they mean for someone who knows Perl/Python regexes
_EXPLAIN = (
    ("invalid perl operator: (?=", "look-ahead (?=...) is not supported"),
    ("invalid perl operator: (?!", "negative look-ahead (?!...) is not supported"),
    ("invalid perl operator: (?<", "look-behind (?<=...) / (?<!...) is not supported"),
    ("invalid perl operator: (?P=", "back-references (?P=name) are not supported"),
    ("invalid perl operator: (?>", "atomic groups (?>...) are not supported"),
    ("invalid escape sequence: \\1", "back-references like \\1 are not supported"),
    ("invalid escape sequence: \\2", "back-references like \\2 are not supported"),
    ("invalid escape sequence: \\Z", "\\Z is not supported: use $ (or \\z)"),
    ("invalid repetition size", "a repeat count above 1000 is not supported"),
    ("bad repetition operator", "a repetition (*, +, ?) follows nothing or another one"),
    ("pattern too large", "the pattern compiles to a program that is too large"),
    ("missing ]", "a character class [...] is not closed"),
    ("missing )", "a group (...) is not closed"),
    ("unexpected )", "there is a ) without a matching ("),
    ("trailing \\", "the pattern ends with a lone backslash"),
)

UNSUPPORTED_HINT = (
    "the gateway runs patterns with RE2, which guarantees linear time but has no "
    "back-references or look-around"
)


class PatternError(ValueError):
    """A pattern that RE2 cannot run, with a plain explanation."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors are reported to the admin, not to stderr
    options.max_mem = MAX_PROGRAM_MEMORY
    return options


def explain(message: str) -> str:
    for needle, meaning in _EXPLAIN:
        if needle in message:
            if "supported" in meaning and "repeat" not in meaning:
                return f"{meaning} ({UNSUPPORTED_HINT})"
            return meaning
    return message


def compile_pattern(pattern: str):
    """A compiled RE2 pattern with `.search(text)`, or PatternError saying why not."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(
            f"the pattern is {len(pattern)} characters long; at most {MAX_PATTERN_LENGTH}"
        )
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        raw = exc.args[0] if exc.args else str(exc)
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise PatternError(explain(message)) from None
