"""Run the installed `mailwarden` command the way an operator types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MAILWARDEN = str(Path(sys.executable).with_name("mailwarden"))


def mailwarden(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`mailwarden ARGS...` as a subprocess; MAILWARDEN_CONFIG only when given in env;
    `stdin` is typed on its standard input."""
    base = {k: v for k, v in os.environ.items() if k != "MAILWARDEN_CONFIG"}
    return subprocess.run(
        [MAILWARDEN, *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
    )
