"""Start the real gateway for tests: in this process (a thread with its own loop)
or as a `mailwarden serve` subprocess (for signals and crashes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.app.server import Gateway
from gateway.config import load_settings
from tests.support.smtp_sink import free_port

REPO = Path(__file__).resolve().parents[2]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def write_config(
    directory: Path, next_hop: str, extra: dict[str, dict[str, Any]] | None = None
) -> Path:
    """A complete config in `directory` (spool and SQLite ledger inside it)."""
    sections: dict[str, dict[str, Any]] = {
        "smtp": {
            "listen": f"127.0.0.1:{free_port()}",
            "hostname": "mx.example.test",
            "max_message_size": 1_048_576,
            "max_recipients": 5,
            "timeout": 30.0,
            "shutdown_grace": 5.0,
        },
        "domains": {"accept": ["example.test", "other.test"]},
        "delivery": {
            "next_hop": next_hop,
            "retry_schedule": [0.3, 0.5, 1.0],
            "retry_window": 3600.0,
            "connect_timeout": 2.0,
            "command_timeout": 10.0,
            "poll_interval": 0.2,
        },
        "spool": {"path": str(directory / "spool")},
        "store": {"url": f"sqlite:///{directory / 'ledger.db'}"},
        "pipeline": {"budget": 5.0},
    }
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path = directory / "mailwarden.toml"
    path.write_text("\n".join(lines))
    return path


class InProcessGateway:
    """The Gateway object on its own event loop in a thread."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.settings = load_settings(config)
        self.gateway = Gateway(self.settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.gateway.address[1]

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> InProcessGateway:
        self._thread.start()
        self.call(self.gateway.start())
        return self

    def stop(self) -> None:
        try:
            self.call(self.gateway.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def __enter__(self) -> InProcessGateway:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class GatewayProcess:
    """`mailwarden serve --config FILE` as a child process."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.settings = load_settings(config)
        self.port = int(self.settings.smtp.listen.rsplit(":", 1)[1])
        self.proc: subprocess.Popen | None = None
        self.log = config.parent / "gateway.log"
        self.metrics_url: str | None = None  # with [metrics] listen

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "-v", "serve", "--config", str(self.config)],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env=env,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if b"metrics on " in line:
                self.metrics_url = line.decode().split("metrics on ", 1)[1].strip()
            if b"listening on" in line:
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"gateway did not start: {self.log.read_text()[-3000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
