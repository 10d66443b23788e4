"""`mailwarden web --config FILE`: the console alone, as an operator starts it."""

from __future__ import annotations

import subprocess
import time

import httpx

from tests.integration.gateway.cli.operator_run import MAILWARDEN, mailwarden
from tests.support.gateway import write_config
from tests.support.smtp_sink import free_port


def test_web_serves_the_console_and_says_when_it_cannot(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:9", {})
    refused = mailwarden("web", "-c", str(config))
    assert refused.returncode == 2 and "[web] listen" in refused.stderr
    port = free_port()
    proc = subprocess.Popen(
        [MAILWARDEN, "web", "-c", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline, answer = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
        assert 'name="csrf"' in answer.text
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        api = httpx.get(f"http://127.0.0.1:{port}/api/quarantine", timeout=5)
        assert api.status_code == 401 and "error" in api.json()
    finally:
        proc.terminate()
        proc.wait(10)
