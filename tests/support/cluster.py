"""Several `mailwarden serve` nodes sharing one PostgreSQL schema and Redis, for the
tests that show what a cluster does: their configurations, started side by side."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.gateway import GatewayProcess, write_config


def node_configs(
    tmp_path: Path,
    hops: dict[str, str],
    dns_server: Any,
    postgres_url: str,
    redis_target: Any,
    *,
    grace: float = 3.0,
    extra: dict[str, dict[str, Any]] | None = None,
    console: tuple[str, int, Path] | None = None,
) -> dict[str, Path]:
    """One configuration per node (its name -> its next hop), all on the same database
    and Redis; `extra` sections for every node; `console` (node, port, signing key
    file) serves the web console on that node."""
    configs = {}
    for name, hop in hops.items():
        directory = tmp_path / name
        directory.mkdir()
        sections: dict[str, dict[str, Any]] = {
            "dns": {"nameservers": [dns_server.nameserver]},
            "store": {"url": postgres_url},
            "redis": {"url": redis_target.url, "prefix": redis_target.prefix},
            "smtp": {"node_name": name, "shutdown_grace": grace},
            **(extra or {}),
        }
        if console is not None and console[0] == name:
            _, port, secret = console
            sections["web"] = {"listen": f"127.0.0.1:{port}", "secret_file": str(secret)}
        configs[name] = write_config(directory, hop, sections)
    return configs


def start_nodes(*configs: Path) -> list[GatewayProcess]:
    """Started side by side (each start takes seconds on a loaded machine)."""
    with ThreadPoolExecutor(len(configs)) as pool:
        return list(pool.map(lambda c: GatewayProcess(c).start(), configs))


def answers(url: str) -> bool:
    """Whether `url` answers 200 (a console that has started)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
