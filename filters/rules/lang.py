"""The per-domain rule language: a YAML policy file, validated and compiled.

A file names its domain, may set thresholds, symbol weights, the subject tag and
the DMARC mode, and lists rules (name, `when` condition, `then` action). The
reference is docs/rules.md. Validation reports *every* problem, each with its
line and a plain explanation, so `mailwarden rules check` can list them all; a
file with any problem is refused as a whole (never half-applied).
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import yaml

from filters.rules import conditions as c
from filters.rules.safe_regex import PatternError, compile_pattern
from filters.rules.yaml_nodes import (
    ParseFailure,
    Problems,
    RuleError,
    compose,
    items,
    kind_name,
    line_of,
    value_of,
)
from gateway.model import ForceKind

MAX_RULES = 1000
MAX_DEPTH = 32
MAX_TEXT = 1000  # characters of one literal value

TOP_KEYS = (
    "domain",
    "description",
    "thresholds",
    "symbols",
    "subject_tag",
    "dmarc",
    "report_addresses",
    "rules",
)
RULE_KEYS = ("name", "description", "enabled", "when", "then")
THRESHOLD_KEYS = ("tag", "quarantine", "reject")
REPORT_KINDS = ("spam", "ham", "virus")  # report addresses: what a user's report says
ALWAYS_DELIVERED = ("abuse", "postmaster")  # never a report address
ACTION_KEYS = ("score", "symbol", "action", "text")
ACTIONS = {
    "allow": ForceKind.ALLOW,
    "tag": ForceKind.TAG,
    "quarantine": ForceKind.QUARANTINE,
    "reject": ForceKind.REJECT,
}
DMARC_MODES = ("honour", "quarantine", "score")
TEXT_OPS = ("matches", "contains", "equals", "starts_with", "ends_with")
ADDRESS_KEYS = ("address", "domain", "local", "matches", "contains")
ATTACHMENT_KEYS = ("name_matches", "extension", "type", "type_matches", "size_over", "size_under")
URL_KEYS = ("domain", "matches", "contains")

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REPORT_LOCAL = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}$")
_SYMBOL_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9-]+$")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 field name: printable, no colon
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def report_local_problem(text: str) -> str | None:
    """What is wrong with `text` as the local part of a report address, or None."""
    local = text.strip().lower()
    if not _REPORT_LOCAL.match(local):
        return (
            f"give the local part only (letters, digits, . _ + -), e.g. spam-report, not {text!r}"
        )
    if local in ALWAYS_DELIVERED:
        return f"{local}@ always receives its mail; choose another name"
    return None


class RuleFileInvalid(Exception):
    """A rule file with problems; `errors` lists every one, sorted by line."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = sorted(set(errors))
        super().__init__("; ".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class RuleAction:
    score: float | None = None  # weight of the rule's own symbol
    symbol: str | None = None  # an extra symbol to add (weighted like any symbol)
    action: ForceKind | None = None
    text: str | None = None  # SMTP reply text for reject


@dataclass(frozen=True)
class CompiledRule:
    name: str
    symbol: str  # RULE_<NAME>: added whenever the rule fires
    condition: c.Condition
    then: RuleAction
    line: int


@dataclass(frozen=True)
class PolicyFile:
    """A valid domain policy file; only the settings it names override the defaults."""

    domain: str
    rules: tuple[CompiledRule, ...] = ()
    thresholds: Mapping[str, float | None] = field(default_factory=dict)  # keys it sets
    symbols: Mapping[str, float] = field(default_factory=dict)  # weight overrides
    subject_tag: str | None = None
    dmarc: str | None = None
    description: str = ""
    report_addresses: Mapping[str, str | None] = field(default_factory=dict)  # kinds it sets

    def weights(self) -> dict[str, float]:
        """Symbol weights this file defines: its overrides and each rule's score."""
        out = dict(self.symbols)
        for rule in self.rules:
            out[rule.symbol] = rule.then.score or 0.0
        return out


def rule_symbol(name: str) -> str:
    """The symbol a rule adds when it fires: "cheap-pills" -> "RULE_CHEAP_PILLS"."""
    return "RULE_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def compile_policy(text: str, known_symbols: frozenset[str] | set[str] | None = None) -> PolicyFile:
    """Validate and compile a policy file, or raise RuleFileInvalid listing every problem.

    known_symbols: symbols other filters produce (the catalogue); conditions and
    weights naming anything else are typos. None skips that check.
    """
    try:
        root = compose(text)
    except ParseFailure as exc:
        raise RuleFileInvalid([exc.error]) from None
    if root is None:
        raise RuleFileInvalid([RuleError(1, "the file is empty: it needs at least 'domain:'")])
    compiler = _Compiler(known_symbols)
    policy = compiler.file(root)
    if compiler.problems or policy is None:
        raise RuleFileInvalid(compiler.problems.errors)
    return policy


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of: {', '.join(choices)})"


def _wrapping(parse: str, wrap: Callable[[Any], c.Condition]) -> Callable[..., c.Condition | None]:
    """A condition builder for _Compiler._LEAVES: `wrap` around what the method named
    `parse` reads from the node, or None when that failed (its problems are noted)."""

    def build(self: _Compiler, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        inner = getattr(self, parse)(node, where, depth)
        return wrap(inner) if inner else None

    return build


class _Compiler:
    """One pass over the node tree, collecting problems and building conditions."""

    def __init__(self, known_symbols: frozenset[str] | set[str] | None) -> None:
        self.problems = Problems()
        self.known = known_symbols
        self.symbol_refs: list[tuple[yaml.Node, str, int]] = []  # (node, name, rule index)
        self.rule_index = 0
        self.produced: dict[str, int] = {}  # symbol -> first rule (by index) adding it

    # --- file and rules ------------------------------------------------------------

    def file(self, root: yaml.Node) -> PolicyFile | None:
        entries = self._keyed(root, "the file", TOP_KEYS)
        domain = None
        if "domain" not in entries:
            self.problems.add(root, "'domain:' is missing: name the domain these rules are for")
        else:
            domain = self._domain(entries["domain"][1], "domain")
        thresholds = self._thresholds(entries["thresholds"][1]) if "thresholds" in entries else {}
        symbols = self._weights(entries["symbols"][1]) if "symbols" in entries else {}
        subject_tag = None
        if "subject_tag" in entries:
            subject_tag = self._line_text(entries["subject_tag"][1], "subject_tag", 64)
        dmarc = None
        if "dmarc" in entries:
            dmarc = self._choice(entries["dmarc"][1], "dmarc", DMARC_MODES)
        reports = {}
        if "report_addresses" in entries:
            reports = self._report_addresses(entries["report_addresses"][1])
        description = ""
        if "description" in entries:
            description = self._text(entries["description"][1], "description", 10_000) or ""
        rules: list[CompiledRule] = []
        if "rules" in entries:
            rules = self._rules(entries["rules"][1])
        self._check_symbols()
        if domain is None:
            return None
        return PolicyFile(
            domain=domain,
            rules=tuple(rules),
            thresholds=MappingProxyType(thresholds),
            symbols=MappingProxyType(symbols),
            subject_tag=subject_tag,
            dmarc=dmarc,
            description=description,
            report_addresses=MappingProxyType(reports),
        )

    def _rules(self, node: yaml.Node) -> list[CompiledRule]:
        if isinstance(node, yaml.ScalarNode) and value_of(node) is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problems.add(
                node, f"rules must be a list (lines starting with -), not {kind_name(node)}"
            )
            return []
        if len(node.value) > MAX_RULES:
            self.problems.add(node, f"{len(node.value)} rules; at most {MAX_RULES} per domain")
        out: list[CompiledRule] = []
        names: dict[str, int] = {}
        symbols: dict[str, str] = {}
        for index, rule_node in enumerate(node.value[:MAX_RULES]):
            self.rule_index = index
            rule = self._rule(rule_node, index)
            if rule is None:
                continue
            if rule.name in names:
                self.problems.add(
                    rule_node,
                    f"rule name {rule.name!r} is already used on line {names[rule.name]}",
                )
                continue
            if rule.symbol in symbols:
                self.problems.add(
                    rule_node,
                    f"rule names {rule.name!r} and {symbols[rule.symbol]!r} both give the "
                    f"symbol {rule.symbol}: choose names that differ in more than "
                    f"punctuation or case",
                )
                continue
            names[rule.name] = rule.line
            symbols[rule.symbol] = rule.name
            out.append(rule)
        return out

    def _rule(self, node: yaml.Node, index: int) -> CompiledRule | None:
        where = f"rule {index + 1}"
        entries = self._keyed(node, where, RULE_KEYS)
        if not entries and not isinstance(node, yaml.MappingNode):
            return None
        name = None
        if "name" not in entries:
            self.problems.add(node, f"{where} has no 'name:'")
        else:
            name_node = entries["name"][1]
            name = self._text(name_node, f"{where}: name", 64)
            if name is not None and not _RULE_NAME.match(name):
                self.problems.add(
                    name_node,
                    f"rule name {name!r}: use letters, digits, '-', '_' and '.', starting "
                    f"with a letter or digit (at most 64)",
                )
                name = None
            if name is not None:
                where = f"rule {name!r}"
                self.produced.setdefault(rule_symbol(name), index)
        if "description" in entries:
            self._text(entries["description"][1], f"{where}: description", 10_000)
        enabled = True
        if "enabled" in entries:
            enabled_node = entries["enabled"][1]
            value = value_of(enabled_node) if isinstance(enabled_node, yaml.ScalarNode) else None
            if not isinstance(value, bool):
                self.problems.add(enabled_node, f"{where}: enabled must be true or false")
            else:
                enabled = value
        condition = None
        if "when" not in entries:
            self.problems.add(node, f"{where} has no 'when:' (the condition)")
        else:
            condition = self.condition(entries["when"][1], f"{where}: when", 0)
        then = None
        if "then" not in entries:
            self.problems.add(node, f"{where} has no 'then:' (what to do when it matches)")
        else:
            then = self._then(entries["then"][1], f"{where}: then")
        if name is None or condition is None or then is None or not enabled:
            return None
        return CompiledRule(name, rule_symbol(name), condition, then, line_of(node))

    def _then(self, node: yaml.Node, where: str) -> RuleAction | None:
        entries = self._keyed(node, where, ACTION_KEYS)
        if not isinstance(node, yaml.MappingNode):
            return None
        ok = True
        score = None
        if "score" in entries:
            score = self._number(entries["score"][1], f"{where}: score", -1000.0, 1000.0)
            ok &= score is not None
        symbol = None
        if "symbol" in entries:
            symbol = self._symbol_name(entries["symbol"][1], f"{where}: symbol")
            ok &= symbol is not None
            if symbol is not None:
                self.produced.setdefault(symbol, self.rule_index)
        action = None
        if "action" in entries:
            word = self._choice(entries["action"][1], f"{where}: action", tuple(ACTIONS))
            action = ACTIONS[word] if word else None
            ok &= action is not None
        text = None
        if "text" in entries:
            text_node = entries["text"][1]
            text = self._reply_text(text_node, f"{where}: text")
            ok &= text is not None
            if action is not None and action is not ForceKind.REJECT:
                self.problems.add(
                    text_node, f"{where}: text is the reply for 'action: reject' only"
                )
                ok = False
        if not node.value:
            self.problems.add(node, f"{where} is empty: give a score, a symbol or an action")
            return None
        if "text" in entries and "action" not in entries:
            self.problems.add(entries["text"][0], f"{where}: text needs 'action: reject'")
            ok = False
        if not ok:
            return None
        return RuleAction(score=score, symbol=symbol, action=action, text=text)

    # --- conditions ----------------------------------------------------------------

    def condition(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        if depth > MAX_DEPTH:
            self.problems.add(node, f"{where}: conditions nested deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(node, yaml.MappingNode):
            self.problems.add(
                node,
                f"{where} must be a mapping such as {{subject: {{contains: ...}}}}, not "
                f"{kind_name(node)}",
            )
            return None
        entries = items(node, self.problems, where)
        if not entries:
            if not node.value:
                self.problems.add(node, f"{where} is empty: say what to test")
            return None
        parts: list[c.Condition] = []
        failed = False
        for key, key_node, value in entries:
            builder = self._LEAVES.get(key)
            if builder is None:
                self.problems.add(
                    key_node, f"{where}: unknown condition {key!r}{_suggest(key, CONDITIONS)}"
                )
                failed = True
                continue
            built = builder(self, value, f"{where}: {key}", depth)
            if built is None:
                failed = True
            else:
                parts.append(built)
        if failed:
            return None
        return parts[0] if len(parts) == 1 else c.All(tuple(parts))

    def _list_of_conditions(
        self, node: yaml.Node, where: str, depth: int
    ) -> tuple[c.Condition, ...] | None:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problems.add(
                node, f"{where} must be a non-empty list of conditions (lines starting with -)"
            )
            return None
        built = [
            self.condition(n, f"{where}[{i + 1}]", depth + 1) for i, n in enumerate(node.value)
        ]
        if any(b is None for b in built):
            return None
        return tuple(b for b in built if b is not None)

    def _not(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        inner = self.condition(node, where, depth + 1)
        return c.Not(inner) if inner is not None else None

    def _header(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        entries = self._keyed(node, where, ("name", "exists", *TEXT_OPS))
        if not isinstance(node, yaml.MappingNode):
            return None
        ok = True
        name = None
        if "name" not in entries:
            self.problems.add(node, f"{where} needs 'name:' (the header field, e.g. X-Mailer)")
            ok = False
        else:
            name = self._text(entries["name"][1], f"{where}: name", 76)
            if name is not None and not _HEADER_NAME.match(name):
                self.problems.add(entries["name"][1], f"{where}: {name!r} is not a header name")
                name = None
            ok &= name is not None
        exists = None
        if "exists" in entries:
            exists_node = entries["exists"][1]
            value = value_of(exists_node) if isinstance(exists_node, yaml.ScalarNode) else None
            if not isinstance(value, bool):
                self.problems.add(exists_node, f"{where}: exists must be true or false")
                ok = False
            else:
                exists = value
        ops = {k: v for k, v in entries.items() if k in TEXT_OPS}
        text = self._ops(ops, where) if ops else None
        if ops and text is None:
            ok = False
        if ok and exists is None and text is None:
            self.problems.add(node, f"{where}: say what to test: exists, or one of {TEXT_OPS}")
            ok = False
        if exists is False and text is not None:
            self.problems.add(node, f"{where}: 'exists: false' cannot be combined with a text test")
            ok = False
        if not ok or name is None:
            return None
        return c.Header(name, text, exists)

    def _address_test(self, node: yaml.Node, where: str, depth: int) -> c.AddressTest | None:
        entries = self._entries(
            node, where, ADDRESS_KEYS, f"{where} is empty: give one of {ADDRESS_KEYS}"
        )
        if entries is None:
            return None
        ok = True
        addresses = local = domain = None
        if "address" in entries:
            values = self._strings(entries["address"][1], f"{where}: address", 320)
            for value, value_node in values or ():
                if value and value.count("@") != 1:
                    self.problems.add(value_node, f"{where}: {value!r} is not an e-mail address")
                    values = None
            addresses = frozenset(v.lower() for v, _ in values) if values else None
            ok &= addresses is not None
        if "local" in entries:
            values = self._strings(entries["local"][1], f"{where}: local", 64)
            local = frozenset(v.lower() for v, _ in values) if values else None
            ok &= local is not None
        if "domain" in entries:
            domain = self._domains(entries["domain"][1], f"{where}: domain")
            ok &= domain is not None
        text_ops = {k: v for k, v in entries.items() if k in ("matches", "contains")}
        text = self._ops(text_ops, where) if text_ops else None
        if text_ops and text is None:
            ok = False
        if not ok:
            return None
        return c.AddressTest(addresses=addresses, domain=domain, local=local, text=text)

    def _attachment(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        entries = self._entries(
            node, where, ATTACHMENT_KEYS, f"{where} is empty: give one of {ATTACHMENT_KEYS}"
        )
        if entries is None:
            return None
        ok = True
        kwargs: dict[str, Any] = {}
        if "name_matches" in entries:
            kwargs["name"] = self._ops({"matches": entries["name_matches"]}, where)
            ok &= kwargs["name"] is not None
        if "extension" in entries:
            values = self._strings(entries["extension"][1], f"{where}: extension", 32)
            if values:
                exts = []
                for value, value_node in values:
                    ext = value.lower().lstrip(".")
                    if not ext or "." in ext or "/" in ext or " " in ext:
                        self.problems.add(
                            value_node, f"{where}: {value!r} is not an extension like exe or .pdf"
                        )
                        ok = False
                    exts.append(ext)
                kwargs["extensions"] = frozenset(exts)
            else:
                ok = False
        if "type" in entries:
            values = self._strings(entries["type"][1], f"{where}: type", 255)
            if values:
                for value, value_node in values:
                    if value.count("/") != 1 or " " in value:
                        self.problems.add(
                            value_node,
                            f"{where}: {value!r} is not a MIME type like application/pdf "
                            f"or application/*",
                        )
                        ok = False
                kwargs["types"] = tuple(v.lower() for v, _ in values)
            else:
                ok = False
        if "type_matches" in entries:
            kwargs["type_text"] = self._ops({"matches": entries["type_matches"]}, where)
            ok &= kwargs["type_text"] is not None
        for key in ("size_over", "size_under"):
            if key in entries:
                kwargs[key] = self._size(entries[key][1], f"{where}: {key}")
                ok &= kwargs[key] is not None
        if not ok:
            return None
        return c.AttachmentTest(**kwargs)

    def _url(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        entries = self._entries(node, where, URL_KEYS, f"{where} is empty: give one of {URL_KEYS}")
        if entries is None:
            return None
        ok = True
        domain = None
        if "domain" in entries:
            domain = self._domains(entries["domain"][1], f"{where}: domain")
            ok &= domain is not None
        text_ops = {k: v for k, v in entries.items() if k in ("matches", "contains")}
        text = self._ops(text_ops, where) if text_ops else None
        if text_ops and text is None:
            ok = False
        return c.Url(domain=domain, text=text) if ok else None

    def _symbol(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        values = self._strings(node, where, 64)
        if not values:
            return None
        names = []
        for value, value_node in values:
            if not _SYMBOL_NAME.match(value):
                self.problems.add(
                    value_node,
                    f"{where}: {value!r} is not a symbol name "
                    f"(capitals, digits and _, e.g. DNSBL_LISTED)",
                )
                return None
            self.symbol_refs.append((value_node, value, self.rule_index))
            names.append(value)
        return c.SymbolPresent(frozenset(names))

    def _classifier(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        bounds = self._bounds(
            node,
            where,
            ("above", "below"),
            lambda n, w: self._number(n, w, 0.0, 1.0),
            "give 'above:' and/or 'below:' (0 to 1)",
        )
        if bounds is None:
            return None
        above, below = bounds
        if above is not None and below is not None and above >= below:
            self.problems.add(node, f"{where}: above ({above}) must be less than below ({below})")
            return None
        return c.Classifier(above, below)

    def _client_ip(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        entries = self._keyed(node, where, ("in",))
        if not isinstance(node, yaml.MappingNode):
            return None
        if "in" not in entries:
            self.problems.add(
                node,
                f"{where} needs 'in:' with an address or network (192.0.2.0/24) or a list of them",
            )
            return None
        values = self._strings(entries["in"][1], f"{where}: in", 64)
        if not values:
            return None
        networks = []
        for value, value_node in values:
            try:
                networks.append(ipaddress.ip_network(value.strip(), strict=False))
            except ValueError:
                self.problems.add(
                    value_node,
                    f"{where}: {value!r} is not an IP address or "
                    f"network like 192.0.2.0/24 or 2001:db8::/32",
                )
                return None
        return c.ClientIp(tuple(networks))

    def _size_condition(self, node: yaml.Node, where: str, depth: int) -> c.Condition | None:
        bounds = self._bounds(
            node, where, ("over", "under"), self._size, "give 'over:' and/or 'under:' (e.g. 5MB)"
        )
        return None if bounds is None else c.Size(*bounds)

    def _bounds(
        self,
        node: yaml.Node,
        where: str,
        keys: tuple[str, str],
        parse: Callable[[yaml.Node, str], Any],
        hint: str,
    ) -> tuple[Any, Any] | None:
        """A lower and/or upper bound (`above`/`below`, `over`/`under`); None when invalid."""
        entries = self._entries(node, where, keys, f"{where}: {hint}")
        if entries is None:
            return None
        bounds = [None, None]
        ok = True
        for i, key in enumerate(keys):
            if key in entries:
                bounds[i] = parse(entries[key][1], f"{where}: {key}")
                ok &= bounds[i] is not None
        return (bounds[0], bounds[1]) if ok else None

    _LEAVES: ClassVar[dict[str, Callable[..., c.Condition | None]]] = {
        "all": _wrapping("_list_of_conditions", c.All),
        "any": _wrapping("_list_of_conditions", c.AnyOf),
        "not": _not,
        "subject": _wrapping("_text_test", c.Subject),
        "body": _wrapping("_text_test", c.Body),
        "header": _header,
        "helo": _wrapping("_text_test", c.Helo),
        "sender": _wrapping("_address_test", c.Sender),
        "from": _wrapping("_address_test", c.HeaderFrom),
        "recipient": _wrapping("_address_test", c.Recipient),
        "attachment": _attachment,
        "url": _url,
        "symbol": _symbol,
        "classifier": _classifier,
        "client_ip": _client_ip,
        "size": _size_condition,
    }

    # --- text tests ----------------------------------------------------------------

    def _text_test(self, node: yaml.Node, where: str, depth: int = 0) -> c.TextTest | None:
        if isinstance(node, yaml.ScalarNode) and isinstance(value_of(node), str):
            self.problems.add(
                node,
                f"{where}: say how to compare, e.g. {{contains: {value_of(node)!r}}} or "
                f"{{matches: ...}} (one of {', '.join(TEXT_OPS)})",
            )
            return None
        entries = self._entries(
            node, where, TEXT_OPS, f"{where} is empty: give one of {', '.join(TEXT_OPS)}"
        )
        if entries is None:
            return None
        return self._ops(entries, where)

    def _ops(
        self, entries: dict[str, tuple[yaml.Node, yaml.Node]], where: str
    ) -> c.TextTest | None:
        ops: list[Callable[[str], bool]] = []
        ok = True
        for key, (_key_node, node) in entries.items():
            if key == "matches":
                pattern = self._text(node, f"{where}: {key}", MAX_TEXT * 2)
                if pattern is None:
                    ok = False
                    continue
                try:
                    ops.append(c.Matches(compile_pattern(pattern), pattern))
                except PatternError as exc:
                    self.problems.add(node, f"{where}: pattern {pattern!r} cannot be used: {exc}")
                    ok = False
                continue
            values = self._strings(node, f"{where}: {key}", MAX_TEXT)
            if values is None:
                ok = False
                continue
            folded = tuple(
                v.strip().casefold() if key != "contains" else v.casefold() for v, _ in values
            )
            if key == "contains":
                if any(not v for v in folded):
                    self.problems.add(node, f"{where}: contains '' would match everything")
                    ok = False
                ops.append(c.Contains(folded))
            elif key == "equals":
                ops.append(c.Equals(frozenset(folded)))
            elif key == "starts_with":
                ops.append(c.StartsWith(folded))
            elif key == "ends_with":
                ops.append(c.EndsWith(folded))
        return c.TextTest(tuple(ops)) if ok else None

    # --- settings beside the rules -------------------------------------------------

    def _thresholds(self, node: yaml.Node) -> dict[str, float | None]:
        entries = self._keyed(node, "thresholds", THRESHOLD_KEYS)
        out: dict[str, float | None] = {}
        for key, (_, value_node) in entries.items():
            if isinstance(value_node, yaml.ScalarNode) and value_of(value_node) is None:
                out[key] = None  # never take this action on score alone
                continue
            number = self._number(value_node, f"thresholds: {key}", -1000.0, 1000.0)
            if number is not None:
                out[key] = number
        given = [(k, out[k]) for k in THRESHOLD_KEYS if out.get(k) is not None]
        for (low_key, low), (high_key, high) in itertools.pairwise(given):
            if low is not None and high is not None and low > high:
                self.problems.add(
                    node,
                    f"thresholds: {low_key} ({low}) is above {high_key} ({high}); they must "
                    f"rise from tag to quarantine to reject",
                )
        return out

    def _report_addresses(self, node: yaml.Node) -> dict[str, str | None]:
        """kind -> the local part that takes users' reports of that kind (None: off)."""
        out: dict[str, str | None] = {}
        for key, (_, value_node) in self._keyed(node, "report_addresses", REPORT_KINDS).items():
            where = f"report_addresses: {key}"
            if isinstance(value_node, yaml.ScalarNode) and value_of(value_node) is None:
                out[key] = None
                continue
            text = self._line_text(value_node, where, 64)
            if text is None:
                continue
            local = text.strip().lower()
            problem = report_local_problem(text)
            if problem is not None:
                self.problems.add(value_node, f"{where}: {problem}")
            elif local in out.values():
                self.problems.add(value_node, f"{where}: {local} already takes another kind")
            else:
                out[key] = local
        return out

    def _weights(self, node: yaml.Node) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, key_node, value_node in items(node, self.problems, "symbols"):
            if not _SYMBOL_NAME.match(key):
                self.problems.add(
                    key_node, f"symbols: {key!r} is not a symbol name (capitals, digits and _)"
                )
                continue
            if key.startswith("RULE_"):
                self.problems.add(
                    key_node, f"symbols: {key} belongs to a rule: set that rule's score instead"
                )
                continue
            self.symbol_refs.append((key_node, key, -1))
            number = self._number(value_node, f"symbols: {key}", -1000.0, 1000.0)
            if number is not None:
                out[key] = number
        return out

    def _check_symbols(self) -> None:
        """Symbols named in conditions or weights must exist, and come from earlier rules."""
        produced = self.produced
        known = self.known
        for node, name, rule_index in self.symbol_refs:
            if known is not None and name in known:
                continue
            if name in produced:
                if rule_index >= 0 and produced[name] >= rule_index:
                    self.problems.add(
                        node,
                        f"symbol {name} is added only by this or a later rule; rules run "
                        f"in file order, so this test can never see it",
                    )
                continue
            if known is None:
                continue
            close = difflib.get_close_matches(name, sorted(known | set(produced)), n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else " (no filter and no earlier rule adds it; see rules/symbols/*.toml)"
            )
            self.problems.add(node, f"unknown symbol {name}{hint}")

    # --- scalars -------------------------------------------------------------------

    def _entries(
        self, node: yaml.Node, where: str, allowed: tuple[str, ...], if_empty: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """`_keyed` for a mapping that must hold at least one key (else `if_empty` is
        the problem); None when it is not a mapping or holds nothing usable."""
        entries = self._keyed(node, where, allowed)
        if not isinstance(node, yaml.MappingNode):
            return None
        if not entries:
            self.problems.add(node, if_empty)
            return None
        return entries

    def _keyed(
        self, node: yaml.Node, where: str, allowed: tuple[str, ...]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        out = {}
        for key, key_node, value_node in items(node, self.problems, where):
            if key not in allowed:
                self.problems.add(key_node, f"{where}: unknown key {key!r}{_suggest(key, allowed)}")
                continue
            out[key] = (key_node, value_node)
        return out

    def _text(self, node: yaml.Node, where: str, limit: int) -> str | None:
        value = value_of(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str):
            hint = " (put it in quotes)" if isinstance(node, yaml.ScalarNode) else ""
            self.problems.add(node, f"{where} must be text, not {kind_name(node)}{hint}")
            return None
        if len(value) > limit:
            self.problems.add(node, f"{where} is {len(value)} characters; at most {limit}")
            return None
        return value

    def _line_text(self, node: yaml.Node, where: str, limit: int) -> str | None:
        value = self._text(node, where, limit)
        if value is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            self.problems.add(node, f"{where} must be one line without control characters")
            return None
        return value

    def _reply_text(self, node: yaml.Node, where: str) -> str | None:
        value = self._line_text(node, where, 200)
        if value is None:
            return None
        if not value.isascii() or not value.strip():
            self.problems.add(node, f"{where}: an SMTP reply must be non-empty plain ASCII text")
            return None
        return value.strip()

    def _strings(
        self, node: yaml.Node, where: str, limit: int
    ) -> list[tuple[str, yaml.Node]] | None:
        """A text or a non-empty list of texts, each with its node."""
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if isinstance(node, yaml.SequenceNode) and not nodes:
            self.problems.add(node, f"{where}: the list is empty")
            return None
        out = []
        for item in nodes:
            value = self._text(item, where, limit)
            if value is None:
                return None
            out.append((value, item))
        return out

    def _number(self, node: yaml.Node, where: str, low: float, high: float) -> float | None:
        value = value_of(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problems.add(node, f"{where} must be a number, not {kind_name(node)}")
            return None
        if not low <= value <= high:
            self.problems.add(node, f"{where} must be between {low:g} and {high:g}, not {value}")
            return None
        return float(value)

    def _size(self, node: yaml.Node, where: str) -> int | None:
        value = value_of(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            match = _SIZE.match(value)
            if match:
                return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
        self.problems.add(
            node, f"{where} must be a size in bytes or like 500KB, 10MB, 1GB, not {kind_name(node)}"
        )
        return None

    def _choice(self, node: yaml.Node, where: str, choices: tuple[str, ...]) -> str | None:
        value = value_of(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, str) else kind_name(node)
            suggestion = (
                _suggest(value, choices)
                if isinstance(value, str)
                else (f" (expected one of: {', '.join(choices)})")
            )
            self.problems.add(node, f"{where}: {shown} is not allowed{suggestion}")
            return None
        return value

    def _domain(self, node: yaml.Node, where: str) -> str | None:
        value = self._text(node, where, 253)
        if value is None:
            return None
        domain = value.strip().lower().rstrip(".")
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
        if not _DOMAIN.match(domain):
            self.problems.add(node, f"{where}: {value!r} is not a domain name")
            return None
        return domain

    def _domains(self, node: yaml.Node, where: str) -> c.DomainMatch | None:
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not nodes:
            self.problems.add(node, f"{where}: the list is empty")
            return None
        out = []
        for item in nodes:
            domain = self._domain(item, where)
            if domain is None:
                return None
            out.append(domain)
        return c.DomainMatch(tuple(out))

    def _symbol_name(self, node: yaml.Node, where: str) -> str | None:
        value = self._text(node, where, 64)
        if value is not None and not _SYMBOL_NAME.match(value):
            self.problems.add(
                node,
                f"{where}: {value!r} is not a symbol name (capitals, digits "
                f"and _, starting with a capital)",
            )
            return None
        if value is not None and value.startswith("RULE_"):
            self.problems.add(
                node, f"{where}: names starting with RULE_ are kept for the rules' own symbols"
            )
            return None
        return value


CONDITIONS = tuple(_Compiler._LEAVES)
