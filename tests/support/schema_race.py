"""Several nodes opening one empty database at the same moment (the race create_schema
must survive), as threads released together by a barrier."""

from __future__ import annotations

import threading

from gateway.store.db import create_schema, make_engine


def create_schema_concurrently(
    url: str, nodes: int = 4, timeout: float = 60
) -> list[BaseException]:
    """Run create_schema on `url` from `nodes` threads at once; the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(nodes)

    def open_store() -> None:
        engine = make_engine(url)
        start.wait()
        try:
            create_schema(engine)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=open_store) for _ in range(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors
