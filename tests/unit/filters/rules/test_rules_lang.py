"""Validating rule files: every kind of mistake is reported with its line and a plain
explanation, and nothing a domain admin writes can stall the gateway."""

from __future__ import annotations

import textwrap
import time

import pytest

from filters.rules.lang import RuleFileInvalid, compile_policy, rule_symbol
from filters.rules.safe_regex import PatternError, compile_pattern
from gateway.model import ForceKind
from gateway.pipeline.policy_files import known_symbols

EXAMPLE = textwrap.dedent(
    """\
    domain: example.test
    thresholds: {tag: 5.0, quarantine: 8.0, reject: 15.0}
    rules:
      - name: cheap-pills
        when: {subject: {matches: "(?i)cheap\\\\s+pills"}}
        then: {score: 6.0}
      - name: partner-allow
        when:
          any:
            - sender: {domain: partner.test}
            - client_ip: {in: "192.0.2.0/24"}
        then: {action: allow}
      - name: no-executables
        when: {attachment: {name_matches: "(?i)\\\\.(exe|scr)$"}}
        then: {action: reject, text: "executables are not accepted here"}
    """
)


def errors_of(text: str) -> list[tuple[int, str]]:
    with pytest.raises(RuleFileInvalid) as info:
        compile_policy(textwrap.dedent(text), known_symbols())
    return [(e.line, e.message) for e in info.value.errors]


def assert_error(text: str, line: int, *fragments: str) -> None:
    found = errors_of(text)
    for number, message in found:
        if number == line and all(f in message for f in fragments):
            return
    raise AssertionError(f"no error on line {line} with {fragments}; got {found}")


def test_the_issue_example_is_valid_and_compiles_to_what_it_says():
    policy = compile_policy(EXAMPLE, known_symbols())
    assert policy.domain == "example.test"
    assert dict(policy.thresholds) == {"tag": 5.0, "quarantine": 8.0, "reject": 15.0}
    names = [r.name for r in policy.rules]
    assert names == ["cheap-pills", "partner-allow", "no-executables"]
    assert policy.weights()["RULE_CHEAP_PILLS"] == 6.0
    assert policy.rules[1].then.action is ForceKind.ALLOW
    reject = policy.rules[2].then
    assert reject.action is ForceKind.REJECT
    assert reject.text == "executables are not accepted here"
    assert [r.line for r in policy.rules] == [4, 7, 13]


def test_rule_symbols_are_derived_from_names():
    assert rule_symbol("cheap-pills") == "RULE_CHEAP_PILLS"
    assert rule_symbol("no.exe_2") == "RULE_NO_EXE_2"


@pytest.mark.parametrize(
    ("text", "line", "fragments"),
    [
        # YAML itself
        ("domain: example.test\nrules:\n  - name: x\n   when: {}\n", 4, ("not valid YAML",)),
        ("domain: example.test\nrules: [\n", 3, ("not valid YAML",)),
        ("domain: a.test\n---\ndomain: b.test\n", 3, ("more than one YAML document",)),
        ("", 1, ("empty",)),
        ("- just\n- a list\n", 1, ("must be a mapping",)),
        ("domain: example.test\nx: &a {b: 1}\ny: *a\n", 3, ("aliases",)),
        ("domain: !!python/object:os.system x\n", 1, ("tag", "not supported")),
        # top level
        ("rules: []\n", 1, ("'domain:' is missing",)),
        ("domain: example.test\ncolour: blue\n", 2, ("unknown key 'colour'",)),
        ("domain: example.test\nrule: []\n", 2, ("did you mean 'rules'",)),
        ("domain: example.test\ndomain: other.test\n", 2, ("appears twice", "line 1")),
        ("domain: 'not a domain'\n", 1, ("is not a domain name",)),
        ("domain: example.test\ndmarc: ignore\n", 2, ("'ignore' is not allowed", "honour")),
        ("domain: example.test\nsubject_tag: 42\n", 2, ("must be text", "quotes")),
        # thresholds and weights
        ("domain: example.test\nthresholds: {tag: 9, quarantine: 8}\n", 2, ("must rise",)),
        ("domain: example.test\nthresholds: {tag: high}\n", 2, ("must be a number",)),
        ("domain: example.test\nthresholds:\n  rejct: 5\n", 3, ("did you mean 'reject'",)),
        ("domain: example.test\nsymbols: {DNSBL_LISTD: 2}\n", 2, ("did you mean 'DNSBL_LISTED'",)),
        ("domain: example.test\nsymbols: {dnsbl: 2}\n", 2, ("not a symbol name",)),
        ("domain: example.test\nsymbols: {RULE_X: 2}\n", 2, ("belongs to a rule",)),
        ("domain: example.test\nsymbols: {DNSBL_LISTED: 5000}\n", 2, ("between -1000 and 1000",)),
        # rules
        ("domain: example.test\nrules: {a: 1}\n", 2, ("must be a list",)),
        ("domain: example.test\nrules:\n  - when: {}\n", 3, ("has no 'name:'",)),
        (
            "domain: example.test\nrules:\n  - name: bad name!\n"
            "    when: {body: {contains: x}}\n    then: {score: 1}\n",
            3,
            ("rule name 'bad name!'",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            "    then: {score: 1}\n  - name: a\n    when: {body: {contains: y}}\n"
            "    then: {score: 1}\n",
            6,
            ("already used on line 3",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a-b\n    when: {body: {contains: x}}\n"
            "    then: {score: 1}\n  - name: a_b\n    when: {body: {contains: y}}\n"
            "    then: {score: 1}\n",
            6,
            ("both give the symbol RULE_A_B",),
        ),
        ("domain: example.test\nrules:\n  - name: a\n    then: {score: 1}\n", 3, ("no 'when:'",)),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n",
            3,
            ("no 'then:'",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    enabled: maybe\n"
            "    when: {body: {contains: x}}\n    then: {score: 1}\n",
            4,
            ("true or false",),
        ),
        # conditions
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {subjet: {contains: x}}\n"
            "    then: {score: 1}\n",
            4,
            ("unknown condition 'subjet'", "did you mean 'subject'"),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {subject: pills}\n"
            "    then: {score: 1}\n",
            4,
            ("say how to compare", "contains"),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {subject: {has: x}}\n"
            "    then: {score: 1}\n",
            4,
            ("unknown key 'has'",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when:\n      any: []\n"
            "    then: {score: 1}\n",
            5,
            ("non-empty list",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when:\n      all:\n"
            "        - subject: {contains: x}\n        - body: {contans: y}\n"
            "    then: {score: 1}\n",
            7,
            ("all[2]: body", "did you mean 'contains'"),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {header: {contains: x}}\n"
            "    then: {score: 1}\n",
            4,
            ("needs 'name:'",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {header: {name: 'X Bad'}}\n"
            "    then: {score: 1}\n",
            4,
            ("not a header name",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {sender: {address: nobody}}\n    then: {score: 1}\n",
            4,
            ("not an e-mail address",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {attachment: {size_over: ten}}\n    then: {score: 1}\n",
            4,
            ("must be a size",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {attachment: {type: pdf}}\n    then: {score: 1}\n",
            4,
            ("not a MIME type",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {classifier: {above: 1.5}}\n    then: {score: 1}\n",
            4,
            ("between 0 and 1",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {classifier: {above: 0.9, below: 0.5}}\n    then: {score: 1}\n",
            4,
            ("must be less than below",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {client_ip: {in: [192.0.2.0/24, 300.1.1.1]}}\n    then: {score: 1}\n",
            4,
            ("'300.1.1.1' is not an IP address or network",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {url: {domain: 'bad domain'}}\n    then: {score: 1}\n",
            4,
            ("not a domain name",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {symbol: DNSBL_LISTD}\n    then: {score: 1}\n",
            4,
            ("unknown symbol DNSBL_LISTD", "DNSBL_LISTED"),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n"
            "    when: {symbol: RULE_B}\n    then: {score: 1}\n"
            "  - name: b\n    when: {body: {contains: x}}\n    then: {score: 1}\n",
            4,
            ("only by this or a later rule",),
        ),
        # actions
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            "    then: {action: nuke}\n",
            5,
            ("'nuke' is not allowed", "reject"),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            "    then: {action: allow, text: hello}\n",
            5,
            ("reply for 'action: reject' only",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            "    then: {text: hello}\n",
            5,
            ("text needs 'action: reject'",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            '    then: {action: reject, text: "caf\\u00e9"}\n',
            5,
            ("plain ASCII",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            "    then: {score: lots}\n",
            5,
            ("score must be a number",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            "    then: {}\n",
            5,
            ("is empty",),
        ),
        (
            "domain: example.test\nrules:\n  - name: a\n    when: {body: {contains: x}}\n"
            "    then: {symbol: RULE_MINE}\n",
            5,
            ("kept for the rules' own symbols",),
        ),
    ],
)
def test_every_kind_of_error_names_its_line(text, line, fragments):
    assert_error(text, line, *fragments)


def test_all_errors_are_reported_not_only_the_first():
    found = errors_of(
        """\
        domain: example.test
        thresholds: {tag: 9.0, quarantine: 8.0}
        colour: blue
        rules:
          - name: one
            when: {subject: {matches: "(a)\\\\1"}}
            then: {score: 1}
          - name: two
            when: {body: {contains: x}}
            then: {action: explode}
        """
    )
    assert [line for line, _ in found] == [2, 3, 6, 10]


def test_patterns_re2_cannot_run_are_refused_with_a_reason():
    for pattern, reason in [
        (r"(a)\1", "back-references"),
        (r"foo(?=bar)", "look-ahead"),
        (r"(?<=a)b", "look-behind"),
        (r"(?!x)y", "negative look-ahead"),
        ("a{2000}", "repeat count"),
        ("[abc", "not closed"),
    ]:
        assert_error(
            f"domain: example.test\nrules:\n  - name: a\n"
            f"    when: {{body: {{matches: '{pattern}'}}}}\n    then: {{score: 1}}\n",
            4,
            "cannot be used",
            reason,
        )
    with pytest.raises(PatternError, match="RE2"):
        compile_pattern(r"(\w+)\s+\1")


def test_catastrophic_pattern_runs_in_linear_time():
    """(a+)+$ against 50,000 "a"s and a "b" takes Python's re longer than the age of the
    universe; RE2 answers in milliseconds. The bound here is generous (a slow CI)."""
    regex = compile_pattern("(a+)+$")
    text = "a" * 50_000 + "b"
    started = time.perf_counter()
    assert regex.search(text) is None
    assert regex.search("a" * 50_000) is not None
    assert time.perf_counter() - started < 1.0


def test_unknown_symbols_are_allowed_without_a_catalogue():
    text = (
        "domain: example.test\nrules:\n  - name: a\n    when: {symbol: OTHER_FILTER_SYM}\n"
        "    then: {score: 1}\n"
    )
    assert compile_policy(text, None).rules[0].name == "a"


def test_disabled_rules_are_validated_but_not_run():
    policy = compile_policy(
        "domain: example.test\nrules:\n  - name: a\n    enabled: false\n"
        "    when: {body: {contains: x}}\n    then: {score: 1}\n",
        known_symbols(),
    )
    assert policy.rules == ()
    assert_error(
        "domain: example.test\nrules:\n  - name: a\n    enabled: false\n"
        "    when: {body: {contanis: x}}\n    then: {score: 1}\n",
        5,
        "did you mean 'contains'",
    )


def test_large_files_and_deep_nesting_are_refused():
    huge = "domain: example.test\ndescription: '" + "x" * (1 << 20) + "'\n"
    assert_error(huge, 1, "larger than")
    nested = "{subject: {contains: x}}"
    for _ in range(40):
        nested = "{not: " + nested + "}"
    assert_error(
        f"domain: example.test\nrules:\n  - name: a\n    when: {nested}\n    then: {{score: 1}}\n",
        4,
        "nested deeper",
    )


def test_report_addresses_are_local_parts_of_the_domain():
    policy = compile_policy(
        "domain: example.test\nreport_addresses: {spam: Junk-Report, virus: null}\n"
    )
    assert dict(policy.report_addresses) == {"spam": "junk-report", "virus": None}
    errors = errors_of(
        """\
        domain: example.test
        report_addresses:
          spam: postmaster
          ham: x@y.test
          virus: "a b"
          other: z
        """
    )
    assert [line for line, _ in errors] == [3, 4, 5, 6]
    assert "postmaster@ always receives its mail" in errors[0][1]
    assert "local part only" in errors[1][1] and "local part only" in errors[2][1]
    assert "unknown key 'other'" in errors[3][1]
    assert errors_of("domain: a.test\nreport_addresses: {spam: x, ham: x}\n") == [
        (2, "report_addresses: ham: x already takes another kind")
    ]


def test_report_addresses_merge_over_the_config_defaults():
    from gateway.config import settings_from_dict
    from gateway.domain_policy import PolicyBook
    from gateway.pipeline.policy_files import apply_policy_file

    settings = settings_from_dict(
        {"domains": {"accept": ["a.test"]}, "report": {"spam_address": "spam-report"}}
    )
    book = PolicyBook.from_settings(settings)
    assert book.for_domain("b.test").report_kind("spam-report") == "spam"
    own = apply_policy_file(
        book.default, compile_policy("domain: a.test\nreport_addresses: {spam: null, ham: ok}\n")
    )
    assert own.report_kind("spam-report") is None and own.report_kind("ok") == "ham"
