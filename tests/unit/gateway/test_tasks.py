"""gateway.tasks.cancel_and_wait: a stop ends tasks that swallowed a cancellation."""

from __future__ import annotations

import asyncio

from gateway.tasks import cancel_and_wait


async def _stubborn(ignored: list[int]) -> None:
    """What a loop around Python 3.11's wait_for does when a cancel lands as its
    awaitable completes: the CancelledError never reaches the loop."""
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if len(ignored) >= 2:
                raise
            ignored.append(1)


def test_a_task_that_ignores_two_cancels_still_ends():
    async def main() -> tuple[bool, int]:
        ignored: list[int] = []
        task = asyncio.create_task(_stubborn(ignored))
        await asyncio.sleep(0)
        ended = await cancel_and_wait([task, None], timeout=2)
        assert task.cancelled()
        return ended, len(ignored)

    assert asyncio.run(main()) == (True, 2)


def test_a_task_that_never_ends_is_left_behind_after_the_deadline(caplog):
    async def main() -> bool:
        released = asyncio.Event()

        async def immortal() -> None:
            while not released.is_set():
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    continue

        task = asyncio.create_task(immortal(), name="immortal")
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        ended = await cancel_and_wait([task], timeout=0.3)
        assert loop.time() - started < 1.0
        released.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return ended

    assert asyncio.run(main()) is False
    assert "task immortal does not end" in caplog.text
