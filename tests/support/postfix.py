"""Debian's Postfix as the protected mail server: a private instance on a loopback port.

Its own config, queue and data directories under one folder; it delivers the listed
mailboxes to a Maildir (`maildir/<domain>/<user>/new`), refuses unlisted ones, and
sends nothing anywhere else (the default transport is an error). `defer()` makes it
answer 4xx to every recipient until `accept()`. Field notes in DESIGN.md; the Makefile
installs it (debconf preseed: "No configuration", so nothing starts by itself).
"""

from __future__ import annotations

import email
import email.policy
import fcntl
import shutil
import smtplib
import subprocess
import tempfile
import time
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from tests.support.smtp_sink import free_port

POSTFIX = "/usr/sbin/postfix"
SYSTEM_MAIN_CF = Path("/etc/postfix/main.cf")
NOBODY = 65534  # owns the Maildirs (virtual_uid_maps)
DEFAULT_MAILBOXES = (
    "alice@example.test",
    "bob@example.test",
    "carol@other.test",
    "abuse@example.test",
)


def postfix_available() -> bool:
    return Path(POSTFIX).exists() and Path("/etc/postfix/master.cf").exists()


@contextmanager
def _system_config_locked():
    with open("/etc/postfix/.mailwarden-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _allow_config_directory(directory: Path, allow: bool) -> None:
    """Postfix only runs a config directory that the default main.cf lists in
    alternate_config_directories (when there is a default main.cf at all)."""
    if not SYSTEM_MAIN_CF.exists():
        return
    with _system_config_locked():
        current = subprocess.run(
            ["postconf", "-h", "alternate_config_directories"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split(",")
        listed = [d.strip() for d in current if d.strip() and d.strip() != str(directory)]
        if allow:
            listed.append(str(directory))
        subprocess.run(
            ["postconf", "-e", f"alternate_config_directories = {', '.join(listed)}"],
            check=True,
            capture_output=True,
        )


class PostfixServer:
    """A private Postfix instance in a folder of its own; `address` is host:port.

    The folder is not under pytest's tmp_path: that is private to root (0700), and
    Postfix's daemons run as the user postfix and must reach their files."""

    def __init__(self, mailboxes: tuple[str, ...] = DEFAULT_MAILBOXES) -> None:
        directory = Path(tempfile.mkdtemp(prefix="mailwarden-postfix-"))
        directory.chmod(0o755)
        self.dir = directory
        self.etc = directory / "etc"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.mailboxes = mailboxes
        self.log = directory / "postfix.log"
        self.maildir = directory / "maildir"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [POSTFIX, "-c", str(self.etc), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _write_config(self) -> None:
        d = self.dir
        for sub in ("etc", "queue", "data", "maildir"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(d / "data", "postfix")
        shutil.chown(self.maildir, NOBODY, NOBODY)
        domains = sorted({box.split("@", 1)[1] for box in self.mailboxes})
        (self.etc / "mailboxes").write_text(
            "".join(f"{box} {box.split('@')[1]}/{box.split('@')[0]}/\n" for box in self.mailboxes)
        )
        (self.etc / "deferrals").write_text("")
        (self.etc / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {d / "queue"}
data_directory = {d / "data"}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.example.test
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
maillog_file = {self.log}
maillog_file_prefixes = {d}
default_transport = error:no mail leaves this test instance
virtual_mailbox_domains = {", ".join(domains)}
virtual_mailbox_base = {self.maildir}
virtual_mailbox_maps = texthash:{self.etc / "mailboxes"}
virtual_uid_maps = static:{NOBODY}
virtual_gid_maps = static:{NOBODY}
smtpd_recipient_restrictions = check_recipient_access texthash:{self.etc / "deferrals"},
    permit_mynetworks, reject_unauth_destination
"""
        )
        master = Path("/etc/postfix/master.cf").read_text().splitlines()
        lines = [
            f"{self.host}:{self.port} inet n - n - - smtpd" if line.startswith("smtp ") else line
            for line in master
        ]
        (self.etc / "master.cf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 30.0) -> PostfixServer:
        self._write_config()
        _allow_config_directory(self.etc, True)
        started = self._postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stderr}\n{self.log_text()}")
        self._wait_for(lambda: self._answers(), timeout, "Postfix to listen")
        return self

    def stop(self) -> None:
        self._postfix("stop")
        _allow_config_directory(self.etc, False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostfixServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def _answers(self, rcpt: str | None = None) -> int | None:
        """The reply code to RCPT TO (or to the greeting), None when not listening."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=5) as client:
                if rcpt is None:
                    return client.noop()[0]
                client.ehlo("probe.example.test")
                client.mail("probe@example.test")
                code = client.rcpt(rcpt)[0]
                client.rset()
                return code
        except (OSError, smtplib.SMTPException):
            return None

    def _wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what}\n{self.log_text()[-3000:]}")

    def _set_deferrals(self, text: str, expect: int, timeout: float) -> None:
        (self.etc / "deferrals").write_text(text)
        reloaded = self._postfix("reload")
        if reloaded.returncode != 0:
            raise RuntimeError(f"postfix reload failed: {reloaded.stderr}")
        probe = self.mailboxes[0]
        self._wait_for(lambda: self._answers(probe) == expect, timeout, f"RCPT answered {expect}")

    def defer(self, reply: str = "451 4.3.0 mail server busy, try again later") -> None:
        """Answer every recipient with `reply` (a 4xx) until accept()."""
        domains = sorted({box.split("@", 1)[1] for box in self.mailboxes})
        self._set_deferrals("".join(f"{d} {reply}\n" for d in domains), int(reply[:3]), 30)

    def accept(self) -> None:
        self._set_deferrals("", 250, 30)

    def delivered(self, mailbox: str) -> list[EmailMessage]:
        """The messages in the mailbox's Maildir (new/), oldest first."""
        user, domain = mailbox.split("@", 1)
        new = self.maildir / domain / user / "new"
        if not new.exists():
            return []
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)
        return [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for f in files
        ]

    def wait_delivered(self, mailbox: str, count: int = 1, timeout: float = 60.0) -> list:
        self._wait_for(
            lambda: len(self.delivered(mailbox)) >= count, timeout, f"{count} mail(s) in {mailbox}"
        )
        return self.delivered(mailbox)
