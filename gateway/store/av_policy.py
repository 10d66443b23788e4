"""Per-mailbox antivirus policy, with a per-domain default, in the shared database.

One row per target: a mailbox ("bob@example.com") or a domain ("@example.com").
Each setting (enabled, mode, keep_original) may be left unset (NULL) and is
then inherited field by field: mailbox, else its domain, else the global
default `AvPolicy()`. So a domain admin can switch the whole domain to
"detect" while one mailbox keeps only its own choice about originals.

Rows live in the database (not the config file) so every gateway node sees a
change at once and the web console can edit them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, String, Table, delete, select
from sqlalchemy.engine import Engine

from gateway.model import AvPolicy
from gateway.store.db import Database, metadata

MODES = ("clean", "detect")
FIELDS = ("enabled", "mode", "keep_original")
DEFAULT = "default"

av_policies = Table(
    "av_policies",
    metadata,
    Column("target", String(320), primary_key=True),  # "user@domain" or "@domain"
    Column("enabled", Boolean),  # NULL: inherited
    Column("mode", String(8)),
    Column("keep_original", Boolean),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(255)),
)


def normalise_target(text: str) -> str:
    """'Bob@Example.COM' -> 'bob@example.com', '@Example.com' -> '@example.com'."""
    value = text.strip().lower().rstrip(".")
    local, at, domain = value.rpartition("@")
    if not at or not domain or "." not in domain or any(c.isspace() for c in value):
        raise ValueError(f"{text!r} is neither a mailbox (user@domain) nor a domain (@domain)")
    if "@" in local:
        raise ValueError(f"{text!r} has more than one @")
    return value


def domain_target(target: str) -> str:
    return "@" + target.rpartition("@")[2]


@dataclass(frozen=True)
class Effective:
    """A target's effective policy and, per field, the target it came from."""

    policy: AvPolicy
    sources: Mapping[str, str]  # field -> "bob@example.com" | "@example.com" | "default"


def resolve(rows: Mapping[str, Mapping[str, Any]], rcpt: str) -> Effective:
    """Field by field: the mailbox's row, else its domain's row, else AvPolicy() (pure)."""
    target = normalise_target(rcpt)
    chain = [target] if target.startswith("@") else [target, domain_target(target)]
    default = AvPolicy()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in FIELDS:
        for key in chain:
            row = rows.get(key)
            if row is not None and row.get(name) is not None:
                values[name], sources[name] = row[name], key
                break
        else:
            values[name], sources[name] = getattr(default, name), DEFAULT
    return Effective(AvPolicy(**values), sources)


def fetch_rows(engine: Engine, targets: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(targets))
    if not wanted:
        return {}
    with engine.connect() as conn:
        found = conn.execute(select(av_policies).where(av_policies.c.target.in_(wanted)))
        return {r.target: dict(r._mapping) for r in found}


def all_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every row's settings by target (for a process's copy: gateway.store.av_policy_live)."""
    columns = [av_policies.c.target, *(av_policies.c[name] for name in FIELDS)]
    with engine.connect() as conn:
        return {r.target: dict(r._mapping) for r in conn.execute(select(*columns))}


def policies_from(
    rows: Mapping[str, Mapping[str, Any]], rcpts: Sequence[str]
) -> dict[str, AvPolicy]:
    """The effective AvPolicy of each recipient (keys as given), from rows that hold at
    least each one's mailbox and domain rows if they exist; bad addresses get the default."""
    found: dict[str, AvPolicy] = {}
    for rcpt in rcpts:
        try:
            found[rcpt] = resolve(rows, rcpt).policy
        except ValueError:
            found[rcpt] = AvPolicy()
    return found


def policies_for(engine: Engine, rcpts: Sequence[str]) -> dict[str, AvPolicy]:
    """The effective AvPolicy of each recipient (keys as given); bad addresses get the default."""
    keys: list[str] = []
    for rcpt in rcpts:
        try:
            target = normalise_target(rcpt)
        except ValueError:
            continue
        keys += [target, domain_target(target)]
    return policies_from(fetch_rows(engine, keys), rcpts)


async def load_av_policies(db: Database, rcpts: Sequence[str]) -> dict[str, AvPolicy]:
    """For the pipeline: exact mailbox > @domain default > global default, per field."""
    return await db.run(policies_for, list(rcpts))


def set_policy(
    engine: Engine,
    target: str,
    *,
    enabled: bool | None = None,
    mode: str | None = None,
    keep_original: bool | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Set the given fields of a target's row (others keep their value); returns the row."""
    target = normalise_target(target)
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    changes = {
        k: v
        for k, v in (("enabled", enabled), ("mode", mode), ("keep_original", keep_original))
        if v is not None
    }
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(select(av_policies).where(av_policies.c.target == target)).first()
        if row is None:
            values = {"target": target, "updated_at": now, "updated_by": actor, **changes}
            conn.execute(av_policies.insert().values(**values))
        else:
            conn.execute(
                av_policies.update()
                .where(av_policies.c.target == target)
                .values(updated_at=now, updated_by=actor, **changes)
            )
        new = conn.execute(select(av_policies).where(av_policies.c.target == target)).one()
    return dict(new._mapping)


def clear_policy(engine: Engine, target: str) -> bool:
    """Remove a target's row (it inherits everything again); False if there was none."""
    target = normalise_target(target)
    with engine.begin() as conn:
        return conn.execute(delete(av_policies).where(av_policies.c.target == target)).rowcount > 0


def list_rows(engine: Engine, domain: str | None = None) -> list[dict[str, Any]]:
    query = select(av_policies).order_by(av_policies.c.target)
    if domain is not None:
        suffix = "@" + domain.lower().lstrip("@")
        query = query.where(av_policies.c.target.endswith(suffix, autoescape=True))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
