"""Per-domain rules in the shared database, versioned: every save is a new version.

A domain's policy is one YAML text in the rule language (filters/rules/lang.py,
docs/rules.md): its rules, thresholds and symbol weights. Each save inserts a
version (who, when, a comment) and keeps every earlier one; a rollback is a new
version that copies an old one, so history only grows. Nodes follow `change_counter`
(the newest version's id) to pick a change up (gateway/pipeline/rules_db.py).

The store cannot compile rules (it sits below filters/), so every write takes a
`Checker` (gateway.pipeline.rules_db.checker(settings) is the real one): it refuses
invalid text with `RulesInvalid` (every error with its line) and a domain whose
rules are kept in `[rules] dir` files with `RulesReadOnly` (naming the file).

    check = rules_db.checker(settings)
    v = rules_store.save(engine, "example.com", text, "alice", check=check, comment="...")
    rules_store.current(engine, "example.com")       # RuleVersion | None
    rules_store.history(engine, "example.com")       # newest first
    rules_store.get(engine, "example.com", 3)        # RuleVersion | None
    rules_store.rollback(engine, "example.com", 3, "alice", check=check)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection, Engine

from gateway.store.db import metadata

rule_versions = Table(
    "rule_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the change counter
    Column("domain", String(255), nullable=False),
    Column("version", Integer, nullable=False),  # 1, 2, ... per domain
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("copied_from", Integer),  # a rollback: the version it copies
    UniqueConstraint("domain", "version", name="uq_rule_versions_domain_version"),
)


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


class RulesInvalid(ValueError):
    """The text was refused; `.errors` has every problem with its line (1-based)."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"line {e.line}: {e.message}" for e in errors))


class RulesReadOnly(Exception):
    """The domain's rules live in a `[rules] dir` file: the database's are not used."""


class UnknownVersion(LookupError):
    """No such version of that domain's rules."""


class Checker(Protocol):
    def read_only(self, domain: str) -> str | None:
        """Why the domain's rules cannot be edited here, or None when they can."""
        ...

    def validate(self, domain: str, text: str) -> None:
        """Raise RulesInvalid when `text` is not a valid policy of `domain`."""
        ...


@dataclass(frozen=True)
class RuleVersion:
    domain: str
    version: int
    text: str
    created_at: datetime
    created_by: str
    comment: str
    copied_from: int | None
    id: int  # global and increasing: what nodes compare

    def as_json(self) -> dict:
        return {
            "domain": self.domain,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "comment": self.comment,
            "copied_from": self.copied_from,
            "text": self.text,
        }


def normalise_domain(domain: str) -> str:
    value = domain.strip().lower().rstrip(".")
    if not value or "@" in value or any(ch.isspace() for ch in value):
        raise ValueError(f"{domain!r} is not a domain name")
    return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(row) -> RuleVersion:
    return RuleVersion(
        domain=row.domain,
        version=row.version,
        text=row.text,
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        comment=row.comment or "",
        copied_from=row.copied_from,
        id=row.id,
    )


def _insert(
    conn: Connection, domain: str, text: str, by: str, comment: str, copied_from: int | None
) -> RuleVersion:
    last = conn.execute(
        select(func.max(rule_versions.c.version)).where(rule_versions.c.domain == domain)
    ).scalar()
    values = {
        "domain": domain,
        "version": int(last or 0) + 1,
        "text": text,
        "created_at": datetime.now(UTC),
        "created_by": by,
        "comment": comment,
        "copied_from": copied_from,
    }
    key = conn.execute(insert(rule_versions).values(**values)).inserted_primary_key
    assert key is not None
    return RuleVersion(id=int(key[0]), **values)  # type: ignore[arg-type]


def _writable(check: Checker, domain: str) -> None:
    reason = check.read_only(domain)
    if reason is not None:
        raise RulesReadOnly(reason)


def save(
    engine: Engine, domain: str, text: str, by: str, *, check: Checker, comment: str = ""
) -> RuleVersion:
    """Validate and store `text` as the domain's next version (RulesInvalid, RulesReadOnly).

    Two saves at once on one domain: the unique (domain, version) makes the later one
    fail with IntegrityError rather than overwrite; the caller may simply retry."""
    domain = normalise_domain(domain)
    if not by:
        raise ValueError("a rules version needs who made it (by)")
    _writable(check, domain)
    check.validate(domain, text)
    with engine.begin() as conn:
        return _insert(conn, domain, text, by, comment, None)


def current(engine: Engine, domain: str) -> RuleVersion | None:
    """The version in force for the domain (the newest), or None when it has none."""
    domain = normalise_domain(domain)
    query = (
        select(rule_versions)
        .where(rule_versions.c.domain == domain)
        .order_by(rule_versions.c.version.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _row(row)


def get(engine: Engine, domain: str, version: int) -> RuleVersion | None:
    domain = normalise_domain(domain)
    query = select(rule_versions).where(
        rule_versions.c.domain == domain, rule_versions.c.version == version
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _row(row)


def history(engine: Engine, domain: str) -> list[RuleVersion]:
    """Every version of the domain's rules, newest first."""
    domain = normalise_domain(domain)
    query = (
        select(rule_versions)
        .where(rule_versions.c.domain == domain)
        .order_by(rule_versions.c.version.desc())
    )
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def rollback(
    engine: Engine, domain: str, version: int, by: str, *, check: Checker, comment: str = ""
) -> RuleVersion:
    """A new version with the text of `version` (UnknownVersion, RulesInvalid if the old
    text no longer validates, e.g. it names a symbol that was since removed)."""
    domain = normalise_domain(domain)
    old = get(engine, domain, version)
    if old is None:
        raise UnknownVersion(f"{domain} has no rules version {version}")
    _writable(check, domain)
    check.validate(domain, old.text)
    with engine.begin() as conn:
        return _insert(
            conn, domain, old.text, by, comment or f"rollback to version {version}", version
        )


def domains(engine: Engine) -> list[str]:
    """Every domain that has rules in the database."""
    with engine.connect() as conn:
        rows = conn.execute(select(rule_versions.c.domain).distinct())
        return sorted(r.domain for r in rows)


def change_counter(engine: Engine) -> int:
    """Moves on every save anywhere: what a node polls (one index lookup)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(rule_versions.c.id))).scalar() or 0)


def all_current(engine: Engine) -> tuple[int, dict[str, RuleVersion]]:
    """(change counter, each domain's version in force), read in one transaction."""
    newest = (
        select(rule_versions.c.domain, func.max(rule_versions.c.version).label("v"))
        .group_by(rule_versions.c.domain)
        .subquery()
    )
    query = select(rule_versions).join(
        newest,
        (rule_versions.c.domain == newest.c.domain) & (rule_versions.c.version == newest.c.v),
    )
    with engine.begin() as conn:
        counter = conn.execute(select(func.max(rule_versions.c.id))).scalar()
        rows = conn.execute(query).all()
    return int(counter or 0), {r.domain: _row(r) for r in rows}
