"""Run one gateway process to completion on the fastest event loop available."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.app.server import serve
from gateway.config import Settings
from gateway.monitor import memtrace


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: the event loop itself is a quarter of the gateway's CPU."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_gateway(settings: Settings, **serve_args: Any) -> None:
    """Serve until SIGTERM (serve's own signal handling ends the loop)."""
    memtrace.install()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(settings, **serve_args))
