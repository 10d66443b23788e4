"""What rules mean: each condition against real messages, and the decision the policy
makes from what they add (pure functions, literal evidence)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from filters.base import Scope
from filters.rules.filter import RulesFilter, run_rules
from filters.rules.lang import compile_policy
from gateway.domain_policy import DomainPolicy, Thresholds
from gateway.model import (
    Action,
    AvPolicy,
    Envelope,
    FilterResult,
    ForceKind,
    MessageContext,
    Symbol,
)
from gateway.pipeline.decide import decide
from gateway.pipeline.policy_files import apply_policy_file, known_symbols
from tests.unit.filters.rules.test_rules_lang import EXAMPLE

DEFAULT = DomainPolicy(domain="*", thresholds=Thresholds(5.0, 10.0, 15.0))


def make_message(
    subject: str = "hello",
    body: str = "Hello there.\n",
    html: str | None = None,
    attachments: tuple[tuple[str, str, bytes], ...] = (),
    headers: dict[str, str] | None = None,
    sender: str = "Alice <alice@sender.test>",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "bob@example.test"
    msg["Subject"] = subject
    msg["Date"] = "Sun, 22 Nov 2026 01:00:00 +0000"
    msg["Message-ID"] = "<test-1@sender.test>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes().replace(b"\n", b"\r\n")  # as sent over SMTP


def ctx_for(
    raw: bytes,
    mail_from: str = "alice@sender.test",
    rcpts: tuple[str, ...] = ("bob@example.test",),
    ip: str = "198.51.100.9",
    helo: str = "mail.sender.test",
) -> MessageContext:
    env = Envelope(mail_from=mail_from, rcpt_tos=rcpts, client_ip=ip, helo=helo)
    return MessageContext("q1", env, raw, datetime.now(UTC))


def policy_from(text: str) -> DomainPolicy:
    return apply_policy_file(DEFAULT, compile_policy(textwrap.dedent(text), known_symbols()))


def fired(text_or_policy, ctx: MessageContext, results=None) -> list[str]:
    policy = policy_from(text_or_policy) if isinstance(text_or_policy, str) else text_or_policy
    names, _ = run_rules(ctx, Scope(policy.domain, policy, results or {}))
    return [r.name for r in names]


def one_rule(condition: str) -> str:
    return (
        f"domain: example.test\nrules:\n  - name: r\n    when: {condition}\n"
        f"    then: {{score: 1}}\n"
    )


def decision(policy: DomainPolicy, ctx: MessageContext, rcpt: str = "bob@example.test"):
    result = RulesFilter().evaluate(ctx, None, Scope(policy.domain, policy, {}))
    return decide(rcpt, policy, {"rules": result}, AvPolicy())


# --- the example, end to end through policy.decide ----------------------------


def test_example_cheap_pills_scores_six_and_is_tagged():
    policy = policy_from(EXAMPLE)
    d = decision(policy, ctx_for(make_message(subject="CHEAP   pills, today only")))
    assert d.action == Action.TAG
    assert d.score == 6.0
    assert [s.name for s in d.symbols] == ["RULE_CHEAP_PILLS"]
    assert decision(policy, ctx_for(make_message(subject="cheap flights"))).action == Action.ACCEPT


def test_example_partner_allow_skips_scoring_by_sender_domain_or_network():
    policy = policy_from(EXAMPLE)
    pills = make_message(subject="cheap pills")
    by_domain = decision(policy, ctx_for(pills, mail_from="x@partner.test"))
    by_subdomain = decision(policy, ctx_for(pills, mail_from="x@mail.partner.test"))
    by_network = decision(policy, ctx_for(pills, ip="192.0.2.77"))
    for d in (by_domain, by_subdomain, by_network):
        assert d.action == Action.ACCEPT and not d.spam
        assert any("partner-allow" in r for r in d.reasons)
    lookalike = decision(policy, ctx_for(pills, mail_from="x@notpartner.test", ip="192.0.3.1"))
    assert lookalike.action == Action.TAG


def test_example_no_executables_rejects_with_its_text():
    policy = policy_from(EXAMPLE)
    raw = make_message(attachments=(("Invoice.EXE", "application/octet-stream", b"MZ..."),))
    d = decision(policy, ctx_for(raw))
    assert d.action == Action.REJECT
    assert str(d.reply) == "550 5.7.1 executables are not accepted here"
    pdf = make_message(attachments=(("invoice.pdf", "application/pdf", b"%PDF"),))
    assert decision(policy, ctx_for(pdf)).action == Action.ACCEPT


def test_harshest_rule_action_wins_over_allow():
    """A partner sending an executable: allow says "not spam", the reject still holds."""
    policy = policy_from(EXAMPLE)
    raw = make_message(attachments=(("a.scr", "application/octet-stream", b"MZ"),))
    result = RulesFilter().evaluate(
        ctx_for(raw, mail_from="x@partner.test"), None, Scope("example.test", policy, {})
    )
    assert result.facts["fired"] == ["partner-allow", "no-executables"]
    assert result.force is not None and result.force.kind is ForceKind.REJECT
    assert result.force.reply_text == "executables are not accepted here"


def test_abuse_is_never_rejected_by_a_rule():
    policy = policy_from(EXAMPLE)
    raw = make_message(attachments=(("a.exe", "application/octet-stream", b"MZ"),))
    d = decision(policy, ctx_for(raw, rcpts=("abuse@example.test",)), "abuse@example.test")
    assert d.action == Action.TAG and d.reply is None


# --- each condition ------------------------------------------------------------------


def test_subject_text_operations_are_case_insensitive():
    ctx = ctx_for(make_message(subject="Your INVOICE 2024"))
    assert fired(one_rule("{subject: {contains: invoice}}"), ctx) == ["r"]
    assert fired(one_rule("{subject: {starts_with: 'your inv'}}"), ctx) == ["r"]
    assert fired(one_rule("{subject: {ends_with: '2024'}}"), ctx) == ["r"]
    assert fired(one_rule("{subject: {equals: 'your invoice 2024'}}"), ctx) == ["r"]
    assert fired(one_rule("{subject: {equals: [a, b]}}"), ctx) == []
    assert fired(one_rule("{subject: {matches: 'INVOICE \\d+'}}"), ctx) == ["r"]
    assert fired(one_rule("{subject: {matches: 'invoice'}}"), ctx) == []  # regex: as written
    assert fired(one_rule("{subject: {contains: invoice, starts_with: zzz}}"), ctx) == []


def test_encoded_subject_and_body_are_decoded_before_matching():
    raw = (
        b"From: a@sender.test\r\nTo: bob@example.test\r\n"
        b"Subject: =?utf-8?B?5YWN6LS55Y+R56Wo?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=gb2312\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + __import__("base64").b64encode("<p>优惠 发票</p>".encode("gb2312"))
        + b"\r\n"
    )
    ctx = ctx_for(raw)
    assert fired(one_rule("{subject: {contains: '免费'}}"), ctx) == ["r"]
    assert fired(one_rule("{body: {contains: '发票'}}"), ctx) == ["r"]


def test_header_condition_exists_and_text():
    ctx = ctx_for(make_message(headers={"X-Mailer": "BulkSender 3.1"}))
    assert fired(one_rule("{header: {name: x-mailer, contains: bulksender}}"), ctx) == ["r"]
    assert fired(one_rule("{header: {name: X-Mailer, exists: true}}"), ctx) == ["r"]
    assert fired(one_rule("{header: {name: List-Unsubscribe, exists: false}}"), ctx) == ["r"]
    assert fired(one_rule("{header: {name: X-Mailer, exists: false}}"), ctx) == []


def test_body_matches_html_only_messages_as_text():
    ctx = ctx_for(make_message(body="plain part", html="<p>Win a <b>prize</b></p>"))
    assert fired(one_rule("{body: {contains: 'plain part'}}"), ctx) == ["r"]
    html_only = EmailMessage()
    html_only["Subject"] = "x"
    html_only.set_content("<html><body><p>Win a <b>prize</b> now</p></body></html>", subtype="html")
    assert fired(one_rule("{body: {matches: 'Win a prize'}}"), ctx_for(html_only.as_bytes())) == [
        "r"
    ]


def test_sender_from_and_recipient():
    ctx = ctx_for(
        make_message(sender="Boss <ceo@example.test>"),
        mail_from="bounce-123@mailer.test",
        rcpts=("bob@example.test", "carol@other.test"),
    )
    assert fired(one_rule("{sender: {domain: mailer.test}}"), ctx) == ["r"]
    assert fired(one_rule("{sender: {matches: '^bounce-\\d+@'}}"), ctx) == ["r"]
    assert fired(one_rule("{sender: {address: bounce-123@MAILER.test}}"), ctx) == ["r"]
    assert fired(one_rule("{from: {domain: example.test}}"), ctx) == ["r"]
    assert fired(one_rule("{from: {local: ceo}}"), ctx) == ["r"]
    assert fired(one_rule("{recipient: {local: bob}}"), ctx) == ["r"]
    # recipients of other domains are not this domain's business
    assert fired(one_rule("{recipient: {local: carol}}"), ctx) == []
    null_sender = ctx_for(make_message(), mail_from="")
    assert fired(one_rule("{sender: {address: ''}}"), null_sender) == ["r"]


def test_attachment_name_type_and_size():
    raw = make_message(
        attachments=(
            ("report.pdf", "application/pdf", b"%PDF" + b"x" * 3000),
            ("photo.JPG", "image/jpeg", b"\xff\xd8" + b"y" * 10),
        )
    )
    ctx = ctx_for(raw)
    assert fired(one_rule("{attachment: {extension: [exe, jpg]}}"), ctx) == ["r"]
    assert fired(one_rule("{attachment: {type: image/*}}"), ctx) == ["r"]
    assert fired(one_rule("{attachment: {type: application/zip}}"), ctx) == []
    assert fired(one_rule("{attachment: {size_over: 2KB}}"), ctx) == ["r"]
    assert fired(one_rule("{attachment: {size_over: 1MB}}"), ctx) == []
    # all properties must hold for the same attachment
    assert fired(one_rule("{attachment: {extension: jpg, size_over: 1KB}}"), ctx) == []
    assert fired(one_rule("{attachment: {extension: pdf, size_over: 1KB}}"), ctx) == ["r"]
    assert fired(one_rule("{attachment: {type_matches: '^application/'}}"), ctx) == ["r"]


def test_url_domains_from_text_and_html_links():
    ctx = ctx_for(
        make_message(
            body="see www.shop.test/offer",
            html='<p><a href="https://login.evil.test/x">your bank</a></p>',
        )
    )
    assert fired(one_rule("{url: {domain: evil.test}}"), ctx) == ["r"]  # a subdomain
    assert fired(one_rule("{url: {domain: shop.test}}"), ctx) == ["r"]
    assert fired(one_rule("{url: {domain: good.test}}"), ctx) == []
    assert fired(one_rule("{url: {matches: '^https://[^/]*evil'}}"), ctx) == ["r"]
    assert fired(one_rule("{url: {domain: evil.test, contains: '/y'}}"), ctx) == []


def test_symbols_of_earlier_filters_and_earlier_rules():
    ctx = ctx_for(make_message())
    results = {"blocklist": FilterResult(symbols=(Symbol("DNSBL_LISTED", ("zen",), 5.0),))}
    text = textwrap.dedent(
        """\
        domain: example.test
        rules:
          - name: listed
            when: {symbol: DNSBL_LISTED}
            then: {symbol: CUSTOM_SUSPECT}
          - name: listed-and-suspect
            when: {all: [{symbol: CUSTOM_SUSPECT}, {symbol: [RULE_LISTED, URIBL_LISTED]}]}
            then: {action: quarantine}
        """
    )
    assert fired(text, ctx, results) == ["listed", "listed-and-suspect"]
    assert fired(text, ctx, {}) == []


def test_classifier_probability():
    ctx = ctx_for(make_message())
    spammy = {"classifier": FilterResult(facts={"probability": 0.97})}
    hammy = {"classifier": FilterResult(facts={"probability": 0.02})}
    rule = one_rule("{classifier: {above: 0.9}}")
    assert fired(rule, ctx, spammy) == ["r"]
    assert fired(rule, ctx, hammy) == []
    assert fired(rule, ctx, {}) == []  # no classifier ran: never true
    assert fired(one_rule("{classifier: {above: 0.01, below: 0.05}}"), ctx, hammy) == ["r"]


def test_client_ip_v4_v6_and_mapped():
    rule = one_rule("{client_ip: {in: [192.0.2.0/24, '2001:db8::/32']}}")
    assert fired(rule, ctx_for(make_message(), ip="192.0.2.200")) == ["r"]
    assert fired(rule, ctx_for(make_message(), ip="::ffff:192.0.2.1")) == ["r"]
    assert fired(rule, ctx_for(make_message(), ip="2001:db8:1::5")) == ["r"]
    assert fired(rule, ctx_for(make_message(), ip="198.51.100.1")) == []
    assert fired(rule, ctx_for(make_message(), ip="unknown")) == []


def test_all_any_not_and_implicit_and():
    ctx = ctx_for(make_message(subject="invoice", body="pay now"))
    assert fired(one_rule("{subject: {contains: invoice}, body: {contains: pay}}"), ctx) == ["r"]
    assert fired(one_rule("{subject: {contains: invoice}, body: {contains: nope}}"), ctx) == []
    assert fired(one_rule("{any: [{subject: {contains: x}}, {body: {contains: pay}}]}"), ctx) == [
        "r"
    ]
    assert fired(one_rule("{not: {subject: {contains: invoice}}}"), ctx) == []
    assert fired(
        one_rule("{all: [{not: {sender: {domain: partner.test}}}, {helo: {ends_with: .test}}]}"),
        ctx,
    ) == ["r"]


def test_size_condition():
    ctx = ctx_for(make_message(body="x" * 5000))
    assert fired(one_rule("{size: {over: 4KB}}"), ctx) == ["r"]
    assert fired(one_rule("{size: {over: 1MB}}"), ctx) == []


def test_file_settings_override_defaults_for_the_domain_only():
    policy = policy_from(
        """\
        domain: example.test
        thresholds: {quarantine: 7, reject: null}
        symbols: {DNSBL_LISTED: 0.5}
        subject_tag: "[PILLS?]"
        dmarc: quarantine
        """
    )
    assert policy.thresholds == Thresholds(tag=5.0, quarantine=7.0, reject=None)
    assert policy.weight("DNSBL_LISTED") == 0.5
    assert policy.subject_tag == "[PILLS?]" and policy.dmarc == "quarantine"


@pytest.mark.parametrize("action", ["tag", "quarantine"])
def test_forced_tag_and_quarantine(action):
    policy = policy_from(
        f"domain: example.test\nrules:\n  - name: r\n    when: {{subject: {{contains: x}}}}\n"
        f"    then: {{action: {action}}}\n"
    )
    d = decision(policy, ctx_for(make_message(subject="x")))
    assert d.action == Action(action)
    if action == "tag":
        assert d.rendering.subject_tag == "[SPAM]"
