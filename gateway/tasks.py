"""Ending asyncio tasks for sure: a stop must not hang on a task that ignored a cancel.

On Python 3.11, asyncio.wait_for swallows a cancellation that arrives just as its
awaitable completes; a loop around it (a heartbeat, a scheduler) then runs on after
one `task.cancel()`, and `await task` waits for ever. `cancel_and_wait` cancels again
until the tasks end, and past its deadline names the ones left behind instead of
hanging the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None], timeout: float = 5.0) -> bool:
    """Cancel the tasks (again every 0.1 s) until they end or `timeout` passes; True if
    all ended. Their exceptions are not raised here: they are ending anyway."""
    pending = {t for t in tasks if t is not None and not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in pending:
        log.error("stop: task %s does not end; leaving it behind", task.get_name())
    return not pending
