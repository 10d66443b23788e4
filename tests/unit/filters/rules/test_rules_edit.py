"""The thresholds page rewrites one top-level key of a policy text: every other line,
comment and rule stays as written, and the result compiles to the new value."""

from __future__ import annotations

import pytest

from filters.rules.edit import CannotEdit, flow_number, set_key
from filters.rules.lang import compile_policy

TEXT = """\
# the policy of example.test
domain: example.test   # ours
thresholds:
  tag: 4.0      # early
  quarantine: 8
# kept comment
rules:
  - name: pills
    when: {subject: {contains: pills}}
    then: {score: 3}
"""
LINE = "thresholds: {tag: 6, reject: null}"


def test_a_block_mapping_is_replaced_and_the_rest_kept():
    out = set_key(TEXT, "thresholds", LINE)
    assert out.splitlines() == [
        "# the policy of example.test",
        "domain: example.test   # ours",
        LINE,
        "# kept comment",
        "rules:",
        "  - name: pills",
        "    when: {subject: {contains: pills}}",
        "    then: {score: 3}",
    ]
    policy = compile_policy(out)
    assert dict(policy.thresholds) == {"tag": 6.0, "reject": None}
    assert [r.name for r in policy.rules] == ["pills"]


def test_a_missing_key_goes_after_the_domain_and_none_removes_it():
    without = set_key(TEXT, "thresholds", None)
    assert "thresholds" not in without and "  tag: 4.0" not in without
    assert "# kept comment" in without and compile_policy(without).thresholds == {}
    added = set_key(without, "thresholds", LINE)
    assert added.splitlines()[2] == LINE
    assert set_key("domain: example.test\n", "thresholds", LINE) == (
        "domain: example.test\n" + LINE + "\n"
    )


def test_flow_and_last_keys_and_block_scalars():
    flow = "domain: example.test\nthresholds: {tag: 1,\n  quarantine: 2}\nrules: []\n"
    assert set_key(flow, "thresholds", LINE) == "domain: example.test\n" + LINE + "\nrules: []\n"
    last = "domain: example.test\ndescription: |\n  two\n  lines\nthresholds:\n  tag: 1\n"
    out = set_key(last, "thresholds", LINE)
    assert out == "domain: example.test\ndescription: |\n  two\n  lines\n" + LINE + "\n"
    assert dict(compile_policy(out).thresholds) == {"tag": 6.0, "reject": None}
    with pytest.raises(CannotEdit):
        set_key("{domain: example.test, thresholds: {tag: 1}}\n", "thresholds", LINE)


def test_numbers_read_back_as_numbers():
    assert [flow_number(v) for v in (5.0, 7.25, 0.0001, -3.5, 0.0, None)] == [
        "5", "7.25", "0.0001", "-3.5", "0", "null",
    ]  # fmt: skip
    text = set_key("domain: a.test\n", "thresholds", "thresholds: {tag: " + flow_number(1e-4) + "}")
    assert compile_policy(text).thresholds["tag"] == pytest.approx(1e-4)
