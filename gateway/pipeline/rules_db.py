"""Per-domain rules from the database: the checker for saves, and each node's live copy.

`checker(settings)` is what every write to gateway.store.rules_store takes: the rule
language's validation (the same as `rules check`), and read-only for a domain whose
rules are a file in `[rules] dir` (the operator chose files for it).

`RulesFollower` keeps a node in step: it polls the store's change counter every
`[rules] db_refresh` seconds and, with Redis configured, also reloads at once on a
message on `<prefix>rules:changed`. Losing Redis costs speed, never a verdict: the
poll goes on, and the loss is logged once. A version that does not compile on this
node (say, it names a symbol this node's catalogue lacks) is logged and the domain
keeps its last good policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filters.rules.lang import PolicyFile, RuleFileInvalid
from gateway.adapters.redis import follow
from gateway.config import Settings
from gateway.pipeline.policy_files import SUFFIXES, check_policy_text, known_symbols
from gateway.store import rules_store
from gateway.store.rules_store import LineError, RulesInvalid, RuleVersion

log = logging.getLogger("mailwarden.rules")


def channel(prefix: str) -> str:
    return f"{prefix}rules:changed"


def file_for(settings: Settings, domain: str) -> Path | None:
    """The domain's file in [rules] dir, if the operator keeps its rules there."""
    directory = settings.rules.dir
    if directory is None:
        return None
    for suffix in SUFFIXES:
        path = Path(directory) / f"{domain}{suffix}"
        if path.is_file():
            return path
    return None


class SettingsChecker:
    """rules_store.Checker for this gateway's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.known = known_symbols()

    def read_only(self, domain: str) -> str | None:
        path = file_for(self.settings, domain)
        if path is None:
            return None
        return (
            f"the rules of {domain} are read from {path} ([rules] dir): edit that file, "
            f"or remove it to manage {domain}'s rules in the database"
        )

    def compile(self, domain: str, text: str) -> PolicyFile:
        try:
            return check_policy_text(text, self.settings.domains.accept, self.known, domain)
        except RuleFileInvalid as exc:
            raise RulesInvalid([LineError(e.line, e.message) for e in exc.errors]) from None

    def validate(self, domain: str, text: str) -> None:
        self.compile(domain, text)


def checker(settings: Settings) -> SettingsChecker:
    return SettingsChecker(settings)


def notify_sync(redis_url: str | None, prefix: str) -> None:
    """Tell every node at once that rules changed (the CLI; nodes poll anyway)."""
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        client.publish(channel(prefix), "changed")
    except redis.RedisError as exc:
        log.warning(
            "rules: could not notify the other nodes through Redis (%s); they will "
            "see the change within [rules] db_refresh seconds",
            exc,
        )
    finally:
        client.close()


async def notify(redis: Any, prefix: str) -> None:
    """The same from async code (the console): never raises."""
    if redis is None:
        return
    try:
        await redis.publish(channel(prefix), "changed")
    except Exception as exc:  # noqa: BLE001 - redis-py raises many kinds
        log.warning("rules: could not notify the other nodes through Redis: %s", exc)


def load_db_policies(settings: Settings, engine: Any) -> dict[str, PolicyFile]:
    """The database's policies in force, compiled once (for `scan`); broken ones skipped."""
    check = SettingsChecker(settings)
    found: dict[str, PolicyFile] = {}
    for domain, row in rules_store.all_current(engine)[1].items():
        if file_for(settings, domain) is not None:
            continue
        try:
            found[domain] = check.compile(domain, row.text)
        except RulesInvalid as exc:
            log.error("rules: %s version %d refused: %s", domain, row.version, exc)
    return found


class RulesFollower:
    """The database's rules in force on this node, handed to `on_change` as a dict
    domain -> PolicyFile each time they change."""

    def __init__(
        self,
        settings: Settings,
        db: Any,
        on_change: Callable[[dict[str, PolicyFile]], None],
        redis: Any = None,
    ) -> None:
        self.settings = settings
        self.db = db  # gateway.store.db.Database
        self.on_change = on_change
        self.redis = redis
        self.prefix = settings.redis.prefix
        self.interval = settings.rules.db_refresh
        self.check = SettingsChecker(settings)
        self.counter: int | None = None
        self.in_force: dict[str, tuple[int, PolicyFile]] = {}  # domain -> (row id, policy)
        self.refused: dict[str, int] = {}  # domain -> row id refused (logged once)
        self._lock = asyncio.Lock()

    async def reload(self, force: bool = False) -> bool:
        """Read the rules again if the change counter moved; True if anything changed."""
        async with self._lock:
            counter = await self.db.run(rules_store.change_counter)
            if not force and counter == self.counter:
                return False
            counter, versions = await self.db.run(rules_store.all_current)
            changed = self._apply(versions)
            self.counter = counter
            if changed or force:
                self.on_change({d: p for d, (_, p) in self.in_force.items()})
            return changed

    def _apply(self, versions: dict[str, RuleVersion]) -> bool:
        changed = False
        for domain in set(self.in_force) - set(versions):
            del self.in_force[domain]
            changed = True
        for domain, row in versions.items():
            held = self.in_force.get(domain)
            if held is not None and held[0] == row.id:
                continue
            if file_for(self.settings, domain) is not None:
                if held is not None:
                    del self.in_force[domain]
                    changed = True
                continue
            try:
                policy = self.check.compile(domain, row.text)
            except RulesInvalid as exc:
                if self.refused.get(domain) != row.id:
                    self.refused[domain] = row.id
                    log.error(
                        "rules: %s version %d (by %s) refused on this node; %s:\n%s",
                        domain,
                        row.version,
                        row.created_by,
                        "its previous version stays in force" if held else "defaults apply",
                        "\n".join(f"  line {e.line}: {e.message}" for e in exc.errors),
                    )
                continue
            self.refused.pop(domain, None)
            self.in_force[domain] = (row.id, policy)
            log.info(
                "rules: %s version %d in force (%d rule%s, by %s)",
                domain,
                row.version,
                len(policy.rules),
                "" if len(policy.rules) == 1 else "s",
                row.created_by,
            )
            changed = True
        return changed

    def version_of(self, domain: str) -> int | None:
        """The database row id in force for a domain (for tests and health)."""
        held = self.in_force.get(domain)
        return None if held is None else held[0]

    async def _safe_reload(self, force: bool = False) -> None:
        try:
            await self.reload(force)
        except Exception as exc:  # noqa: BLE001 - keep the rules in force, try again later
            log.error("rules: reload from the database failed, rules in force unchanged: %s", exc)

    async def run(self) -> None:
        """Follow changes until cancelled: the database poll, and Redis messages."""
        await follow(
            self.redis, channel(self.prefix), self._safe_reload, self.interval, "rules", log
        )
