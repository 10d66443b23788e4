"""Building the pipeline and its ports from settings: one way for the server, `scan`,
`rules test` and the console's dry run, so all of them judge with the same chain."""

from __future__ import annotations

from functools import partial
from typing import Any

from gateway.adapters import Ports
from gateway.adapters.clamd import ClamdClient
from gateway.adapters.dns import Resolver
from gateway.adapters.redis import connect as connect_redis
from gateway.config import Settings
from gateway.domain_policy import PolicyBook
from gateway.lists.live import ListStore
from gateway.pipeline.chain import build_chain
from gateway.pipeline.rules_db import load_db_policies
from gateway.pipeline.run import AvPolicyLoader, Pipeline
from gateway.store.av_policy import load_av_policies


def build_ports(settings: Settings, db: Any) -> Ports:
    """DNS, Redis, clamd and the local lists; `db` is a gateway.store.db.Database (or
    anything with its `run`), or None."""
    redis = connect_redis(settings)
    lists = None
    if db is not None:
        lists = ListStore(db, redis, settings.redis.prefix, settings.blocklist.list_refresh)
    clamd = ClamdClient.from_settings(settings.clamav) if settings.clamav else None
    return Ports(dns=Resolver(settings.dns), store=db, redis=redis, lists=lists, clamd=clamd)


def build_pipeline(
    settings: Settings,
    ports: Ports,
    book: PolicyBook | None = None,
    chain: Any = None,
    av_policies: AvPolicyLoader | None = None,
) -> Pipeline:
    """The pipeline; `book` defaults to the settings plus the domain files of [rules] dir
    and the database's rules; `chain` to a new one from the settings; `av_policies` (the
    server's PolicyCache.policies) to a database read per message, fresh for one-shot
    uses (`scan`, dry runs) that follow no changes."""
    if book is None:
        from gateway.pipeline.policy_files import RulesWatcher

        watcher = RulesWatcher(settings)
        watcher.scan()
        if ports.store is not None:
            watcher.set_db_policies(load_db_policies(settings, ports.store.engine))
        book = watcher.book
    db = ports.store
    return Pipeline(
        build_chain(settings) if chain is None else chain,
        book,
        ports,
        settings.pipeline.budget,
        av_policies=av_policies or _av_policies_per_message(settings, db),
    )


def _av_policies_per_message(settings: Settings, db: Any) -> AvPolicyLoader | None:
    if db is None or not settings.clamav:
        return None
    return partial(load_av_policies, db)
