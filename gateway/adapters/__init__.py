"""Clients for the outside world (DNS, clamd, Redis, the database), behind one bag.

Filters receive a `Ports` in `lookup` and use only what they need; anything not
configured is None and the filter decides what that means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Ports:
    dns: Any = None  # gateway.adapters.dns.Resolver
    clamd: Any = None  # gateway.adapters.clamd client
    redis: Any = None  # redis.asyncio.Redis
    store: Any = None  # gateway.store.Store
    lists: Any = None  # gateway.lists.live.ListStore (local block/allow lists)
