"""A gateway node's list store in its own process, for tests of sharing between nodes.

    python -m tests.support.list_node DB_URL REDIS_URL|- PREFIX REFRESH DOMAIN IP

Runs `ListStore.run()` (Redis notifications + database poll) and prints one JSON
line each time the verdict for (DOMAIN, IP) changes: {"state": "block"|"allow"|"none"}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def main(
    db_url: str, redis_url: str, prefix: str, refresh: float, domain: str, ip: str
) -> None:
    from gateway.lists.live import ListStore
    from gateway.store.db import Database

    db = Database(db_url)
    redis = None
    if redis_url != "-":
        import redis.asyncio as aioredis

        redis = aioredis.from_url(redis_url)
    store = ListStore(db, redis, prefix, refresh)
    task = asyncio.create_task(store.run())
    last = None
    while True:
        if store.loaded_at is not None:
            verdict = store.judge(domain, ip)
            state = verdict.list if verdict else "none"
            if state != last:
                print(json.dumps({"state": state, "at": time.time()}), flush=True)
                last = state
        if task.done():
            task.result()
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    db_url, redis_url, prefix, refresh, domain, ip = sys.argv[1:7]
    asyncio.run(main(db_url, redis_url, prefix, float(refresh), domain, ip))
