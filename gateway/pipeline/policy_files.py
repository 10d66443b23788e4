"""Per-domain policy files in [rules] dir -> the PolicyBook, and reloading them live.

Each domain's file is `<domain>.yaml` (or .yml) and must say `domain: <domain>`,
a domain the gateway accepts: a domain admin's file can change its own domain
only. Files are polled; a changed file is compiled aside and swapped in only when
valid. A broken file is refused and logged with every error, and whatever was in
force before (that file's previous version, or the defaults) stays in force.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from filters.rules.lang import PolicyFile, RuleFileInvalid, compile_policy
from filters.rules.yaml_nodes import RuleError
from gateway.domain_policy import DomainPolicy, PolicyBook, load_symbol_catalogue

log = logging.getLogger("mailwarden.rules")

SUFFIXES = (".yaml", ".yml")


def known_symbols() -> frozenset[str]:
    """Every symbol in the shipped catalogue (rules/symbols/*.toml)."""
    return frozenset(load_symbol_catalogue())


def read_policy_file(
    path: Path,
    accepted: list[str] | None = None,
    known: frozenset[str] | None = None,
    check_name: bool = True,
) -> PolicyFile:
    """Compile one file; RuleFileInvalid when it is broken or names a foreign domain."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RuleFileInvalid([RuleError(1, f"cannot read the file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RuleFileInvalid([RuleError(line, "the file is not UTF-8 text")]) from None
    policy = check_policy_text(text, accepted, known)
    if check_name and path.stem.lower() != policy.domain:
        problem = (
            f"the file says domain {policy.domain} but is named {path.name}: the rules of "
            f"{policy.domain} must be in {policy.domain}.yaml"
        )
        raise RuleFileInvalid([RuleError(_domain_line(text), problem)])
    return policy


def check_policy_text(
    text: str,
    accepted: list[str] | None = None,
    known: frozenset[str] | None = None,
    domain: str | None = None,
) -> PolicyFile:
    """Compile a policy text (a file's or a database version's); RuleFileInvalid when it
    is broken, names a domain the gateway does not accept, or not `domain`."""
    policy = compile_policy(text, known)
    problems = []
    if accepted is not None and policy.domain not in accepted:
        problems.append(
            f"domain {policy.domain} is not one of the domains this gateway accepts "
            f"([domains] accept): a rule file may only set the policy of an accepted domain"
        )
    if domain is not None and policy.domain != domain:
        problems.append(
            f"the text says domain {policy.domain}, but these are the rules of {domain}: "
            f"write `domain: {domain}`"
        )
    if problems:
        line = _domain_line(text)
        raise RuleFileInvalid([RuleError(line, p) for p in problems])
    return policy


def _domain_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("domain:"):
            return number
    return 1


def apply_policy_file(default: DomainPolicy, policy: PolicyFile) -> DomainPolicy:
    """The domain's policy: the defaults with whatever the file sets."""
    thresholds = default.thresholds
    if policy.thresholds:
        thresholds = replace(thresholds, **dict(policy.thresholds))
    merged = dict(default.weights)
    merged.update(policy.weights())
    reports = dict(default.report_addresses)
    for kind, local in policy.report_addresses.items():
        if local is None:
            reports.pop(kind, None)
        else:
            reports[kind] = local
    return DomainPolicy(
        domain=policy.domain,
        thresholds=thresholds,
        weights=MappingProxyType(merged),
        subject_tag=policy.subject_tag or default.subject_tag,
        dmarc=policy.dmarc or default.dmarc,
        rules=policy.rules,
        report_addresses=MappingProxyType(reports),
    )


@dataclass
class _FileState:
    stamp: tuple[int, int, int]  # (mtime_ns, size, inode)
    digest: str
    policy: PolicyFile | None  # the version in force (None: refused from the start)
    errors: list[RuleError]


class RulesWatcher:
    """Keeps a PolicyBook in step with the files of [rules] dir.

    `scan()` does one pass (blocking; run it in a thread from async code) and
    returns True when the book changed; `run()` polls forever. `on_change` gets
    each new book, so the server can swap it atomically.
    """

    def __init__(
        self,
        settings: Any,
        on_change: Callable[[PolicyBook], None] | None = None,
        base: PolicyBook | None = None,
    ) -> None:
        self.settings = settings
        self.directory: Path | None = settings.rules.dir
        self.interval: float = settings.rules.reload_interval
        self.on_change = on_change
        self.base = base or PolicyBook.from_settings(settings)
        self.known = known_symbols()
        self.files: dict[Path, _FileState] = {}
        self.db_policies: dict[str, PolicyFile] = {}  # from the database (rules_db)
        self._build_lock = threading.Lock()
        self.book = PolicyBook(self.base.default, self.base.domains)

    def _candidates(self) -> list[Path]:
        if self.directory is None:
            return []
        try:
            return sorted(
                p
                for p in self.directory.iterdir()
                if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        except OSError as exc:
            log.error("rules: cannot list %s: %s", self.directory, exc.strerror)
            return list(self.files)  # keep what is in force

    def scan(self) -> bool:
        changed = False
        present = self._candidates()
        for path in present:
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            state = self.files.get(path)
            if state is not None and state.stamp == stamp:
                continue
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
            if state is not None and state.digest == digest:
                state.stamp = stamp
                continue
            changed |= self._load(path, stamp, digest, state)
        for path in set(self.files) - set(present):
            state = self.files.pop(path)
            if state.policy is not None:
                log.warning(
                    "rules: %s was removed; %s now follows the default policy",
                    path,
                    state.policy.domain,
                )
                changed = True
        if changed:
            self._publish()
        return changed

    def reset(self, settings: Any) -> None:
        """New settings (SIGHUP): new defaults and thresholds, every file read again
        (blocking). A file refused now keeps the version that was in force."""
        self.settings = settings
        self.directory = settings.rules.dir
        self.interval = settings.rules.reload_interval
        self.base = PolicyBook.from_settings(settings)
        for state in self.files.values():
            state.stamp = (-1, -1, -1)
            state.digest = ""
        self.scan()
        self._publish()

    def set_db_policies(self, policies: dict[str, PolicyFile]) -> None:
        """The database's policies in force (gateway.pipeline.rules_db): a domain with a
        file in [rules] dir keeps its file's policy."""
        self.db_policies = dict(policies)
        self._publish()

    def _publish(self) -> None:
        with self._build_lock:
            self.book = self._build()
            if self.on_change is not None:
                self.on_change(self.book)

    def _load(self, path: Path, stamp, digest: str, state: _FileState | None) -> bool:
        previous = state.policy if state else None
        try:
            policy = read_policy_file(path, self.settings.domains.accept, self.known)
            owner = self._owner(policy.domain, path)
            if owner is not None:
                raise RuleFileInvalid(
                    [RuleError(1, f"domain {policy.domain} is already set by {owner.name}")]
                )
        except RuleFileInvalid as exc:
            kept = (
                "its previous version stays in force"
                if previous
                else ("the domain keeps the default policy")
            )
            log.error(
                "rules: %s refused (%d error%s; %s):\n%s",
                path,
                len(exc.errors),
                "" if len(exc.errors) == 1 else "s",
                kept,
                "\n".join(f"  {path.name}:{e.line}: {e.message}" for e in exc.errors),
            )
            self.files[path] = _FileState(stamp, digest, previous, exc.errors)
            return False
        log.info(
            "rules: loaded %s for %s (%d rule%s)",
            path.name,
            policy.domain,
            len(policy.rules),
            "" if len(policy.rules) == 1 else "s",
        )
        self.files[path] = _FileState(stamp, digest, policy, [])
        return True

    def _owner(self, domain: str, path: Path) -> Path | None:
        for other, state in self.files.items():
            if other != path and state.policy is not None and state.policy.domain == domain:
                return other
        return None

    def _build(self) -> PolicyBook:
        domains = dict(self.base.domains)
        for domain, policy in self.db_policies.items():
            domains[domain] = apply_policy_file(self.base.default, policy)
        for state in self.files.values():
            if state.policy is not None:
                domains[state.policy.domain] = apply_policy_file(self.base.default, state.policy)
        return PolicyBook(self.base.default, domains)

    def errors(self) -> dict[Path, list[RuleError]]:
        """Files currently refused, with their errors."""
        return {p: s.errors for p, s in self.files.items() if s.errors}

    async def run(self) -> None:
        """Poll the files every `[rules] reload_interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self.scan)
            except Exception:
                log.exception("rules: reload failed; the rules in force are unchanged")
