"""The Redis client of a gateway node (redis.asyncio), when [redis] url is set.

Redis is shared state between nodes (DNSBL answer cache, list change
notifications); nothing depends on it for correctness, so a node without it
works alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config import Settings
from gateway.outages import OUTAGES
from gateway.tasks import cancel_and_wait


def connect(settings: Settings) -> Any:
    """A redis.asyncio.Redis for [redis] url, or None; connections open lazily."""
    if not settings.redis.url:
        return None
    return _reporting_class().from_url(
        settings.redis.url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def _reporting_class() -> Any:
    """redis.asyncio.Redis whose commands tell gateway.outages when Redis stops or comes
    back (one log line each way, not one per command)."""
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    class ReportingRedis(aioredis.Redis):
        async def execute_command(self, *args: Any, **options: Any) -> Any:
            target = _target(self)
            try:
                result = await super().execute_command(*args, **options)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                OUTAGES.failed("redis", target, f"{type(exc).__name__}: {exc}")
                raise
            OUTAGES.ok("redis", target)
            return result

    return ReportingRedis


def _target(client: Any) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def publish_sync(
    url: str | None, channel: str, message: str, what: str, log: logging.Logger
) -> None:
    """Tell every node at once that something changed (for the CLI, which is not async);
    without Redis, or when it fails, the nodes learn by their own polling: logged."""
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.publish(channel, message)
    except redis.RedisError as exc:
        log.warning("%s: could not notify the other nodes through Redis (%s)", what, exc)
    finally:
        client.close()


async def follow(
    redis: Any,
    channel: str,
    reload: Callable[[], Awaitable[None]],
    interval: float,
    what: str,
    log: logging.Logger,
    wanted: Callable[[str], bool] | None = None,
) -> None:
    """Until cancelled: `reload` every `interval` seconds, and at once on each message on
    `channel` when Redis is given (only those whose text `wanted` accepts, when given).
    Losing Redis costs speed, never a change: the poll goes on, and the loss is logged
    once (its return once). `reload` must not raise."""
    tasks = [asyncio.create_task(_poll(reload, interval), name=f"{what}:poll")]
    if redis is not None:
        listen = _listen(redis, channel, reload, interval, what, log, wanted)
        tasks.append(asyncio.create_task(listen, name=f"{what}:listen"))
    try:
        await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(tasks)


def _wanted(message: dict[str, Any], wanted: Callable[[str], bool] | None) -> bool:
    if wanted is None:
        return True
    data = message.get("data")
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return wanted(text)


async def _poll(reload: Callable[[], Awaitable[None]], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await reload()


async def _listen(
    redis: Any,
    channel: str,
    reload: Callable[[], Awaitable[None]],
    interval: float,
    what: str,
    log: logging.Logger,
    wanted: Callable[[str], bool] | None = None,
) -> None:
    down = False
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(channel)
            if down:
                log.warning("%s: Redis notifications are back", what)
                down = False
            await reload()  # whatever changed while not subscribed
            async for message in pubsub.listen():
                if message.get("type") == "message" and _wanted(message, wanted):
                    await reload()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loss of Redis: poll, retry
            if not down:
                log.warning(
                    "%s: Redis notifications lost (%s); changes are picked up by polling "
                    "the database every %.0fs until it is back",
                    what,
                    exc,
                    interval,
                )
                down = True
            await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
