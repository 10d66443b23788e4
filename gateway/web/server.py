"""Serving the console: uvicorn on [web] listen, alone or beside the gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from gateway.config import Settings, parse_host_port
from gateway.lists.live import notify_sync
from gateway.pipeline import rules_db
from gateway.store import av_policy_live
from gateway.store.db import create_schema, make_engine
from gateway.web.app import create_app


def build_server(
    settings: Settings, listen: str | None = None, chain: Any = None
) -> uvicorn.Server:
    host, port = parse_host_port(listen or settings.web.listen or "127.0.0.1:8025", any_port=True)
    engine = make_engine(settings.store.url)
    create_schema(engine)
    app = create_app(
        settings,
        engine,
        lambda: notify_sync(settings.redis.url, settings.redis.prefix),
        lambda: rules_db.notify_sync(settings.redis.url, settings.redis.prefix),
        chain,
        lambda: av_policy_live.notify_sync(settings.redis.url, settings.redis.prefix),
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    return uvicorn.Server(config)


async def serve_console(server: uvicorn.Server, stop: asyncio.Event) -> None:
    """Run until `stop` is set (beside the gateway in one event loop)."""
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
