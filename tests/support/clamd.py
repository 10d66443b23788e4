"""A real clamd for tests: its own config, socket, TCP port and a copy of rules/clamav.

clamd runs in the foreground as a child process, with the project's local
signatures as its only database (no download). Tests talk to it through
`.socket` (unix) or `.address` ("127.0.0.1:PORT"). `stop()` kills it so tests
can see what the gateway does when the scanner goes away; `pause()` freezes it
(SIGSTOP) to provoke timeouts.

`build_cud` writes an unsigned ClamAV database (.cud) with a chosen version and
build time, the way `sigtool --build --unsigned` does, so that clamd's VERSION
reply carries a database version and date (local .ndb/.hdb files carry none).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.paths import rules_dir

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
SIGNATURE_SUFFIXES = (".ndb", ".hdb", ".hsb", ".ldb", ".cud", ".cvd", ".cld", ".ign2", ".fp")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clamd_available() -> bool:
    return os.access(CLAMD, os.X_OK)


class ClamdServer:
    """Start with `with ClamdServer() as clamd:`; clamd.socket, clamd.address."""

    def __init__(
        self,
        stream_max_length: str = "64M",
        database: Path | None = None,
        extra_databases: dict[str, bytes] | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailwarden-clamd-"))
        self.db_dir = self.dir / "db"
        self.db_dir.mkdir()
        source = database or rules_dir() / "clamav"
        for path in sorted(source.iterdir()):
            if path.suffix in SIGNATURE_SUFFIXES:
                shutil.copy(path, self.db_dir / path.name)
        for name, data in (extra_databases or {}).items():
            (self.db_dir / name).write_bytes(data)
        self.socket = self.dir / "clamd.sock"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = self.dir / "clamd.log"
        config = {
            "LocalSocket": str(self.socket),
            "TCPSocket": str(self.port),
            "TCPAddr": "127.0.0.1",
            "DatabaseDirectory": str(self.db_dir),
            "TemporaryDirectory": str(self.dir),
            "LogFile": str(self.log),
            "Foreground": "yes",
            "StreamMaxLength": stream_max_length,
            # what docs/antivirus.md recommends for a mail gateway
            "AlertExceedsMax": "yes",
            "AlertEncrypted": "yes",
            "MaxScanSize": "100M",
            "MaxFileSize": "60M",
            "MaxRecursion": "17",
            "MaxFiles": "10000",
            "MaxThreads": "8",
            "SelfCheck": "3600",
        }
        config.update(extra_config or {})
        self.config = self.dir / "clamd.conf"
        self.config.write_text("".join(f"{key} {value}\n" for key, value in config.items()))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ClamdServer:
        self.process = subprocess.Popen(
            [CLAMD, "--foreground", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(f"clamd exited with {self.process.returncode}: {err[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"clamd did not answer PING within {timeout} s")

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket))
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def pause(self) -> None:
        """Freeze clamd (it accepts connections but never answers)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: clamd dies without closing its connections or removing its socket."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.stop()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ClamdServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def build_cud(
    files: dict[str, bytes], version: int, built_at: datetime, name: str = "daily"
) -> bytes:
    """An unsigned ClamAV database (what `sigtool --build=NAME.cud --unsigned` writes).

    Layout: a 512-byte text header, then a tar.gz holding NAME.info (the header
    again plus a sha256 per file) and the signature files. clamd checks the MD5
    of the tar.gz and that the header matches NAME.info, not a signature.
    """
    stime = int(built_at.astimezone(UTC).timestamp())
    when = time.strftime("%d %b %Y %H-%M +0000", time.gmtime(stime))
    count = sum(1 for data in files.values() for line in data.splitlines() if line.strip())
    info = f"ClamAV-VDB:{when}:{version}:{count}:90:X:X:mailwarden-tests:{stime}\n"
    info += "".join(f"{n}:{len(d)}:{hashlib.sha256(d).hexdigest()}\n" for n, d in files.items())
    members = {"COPYING": b"test signatures\n", f"{name}.info": info.encode(), **files}
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members.items():
            entry = tarfile.TarInfo(member)
            entry.size = len(data)
            entry.mode = 0o644
            tar.addfile(entry, io.BytesIO(data))
    body = gzip.compress(tar_bytes.getvalue(), mtime=0)
    md5 = hashlib.md5(body).hexdigest()
    header = f"ClamAV-VDB:{when}:{version}:{count}:90:{md5}:X:mailwarden-tests:{stime}"
    return header.encode().ljust(512, b" ") + body


def project_signatures_as_cud(version: int, built_at: datetime) -> bytes:
    """rules/clamav's signatures packed as daily.cud (so VERSION reports a db date)."""
    source = rules_dir() / "clamav"
    files = {
        f"daily{path.suffix}": path.read_bytes()
        for path in sorted(source.iterdir())
        if path.suffix in (".ndb", ".hdb")
    }
    return build_cud(files, version, built_at)
