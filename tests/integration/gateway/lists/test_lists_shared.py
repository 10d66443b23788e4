"""Local lists: the CLI, the database record, and several gateway nodes (processes)
sharing one Redis and one database seeing the same entries within a second or two."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from tests.support.gateway import REPO, _toml_value

NODE_WAIT = 20.0


def write_config(directory: Path, store_url: str, redis_target=None, **blocklist) -> Path:
    sections = {
        "domains": {"accept": ["example.test", "other.test"]},
        "delivery": {"next_hop": "127.0.0.1:2626"},
        "spool": {"path": str(directory / "spool")},
        "store": {"url": store_url},
        "blocklist": blocklist,
    }
    if redis_target is not None:
        sections["redis"] = {"url": redis_target.url, "prefix": redis_target.prefix}
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    path = directory / "mailwarden.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command in its own process (as an operator runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


class Node:
    """tests/support/list_node.py in a child process; `wait_for(state)` reads its lines."""

    def __init__(self, db_url: str, redis_target, refresh: float, domain: str, ip: str) -> None:
        redis_url = redis_target.url if redis_target else "-"
        prefix = redis_target.prefix if redis_target else "x:"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.list_node",
                db_url,
                redis_url,
                prefix,
                str(refresh),
                domain,
                ip,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait_for(self, state: str, timeout: float) -> float:
        """When (time.time()) the node's verdict became `state`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"node died: {self.proc.stderr.read()}") from None
                continue
            if event["state"] == state:
                return event["at"]
        raise AssertionError(f"node did not see {state!r} within {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def nodes():
    started: list[Node] = []

    def start(*args) -> Node:
        node = Node(*args)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


def test_two_nodes_sharing_redis_see_a_block_within_two_seconds(
    tmp_path, store_url, redis_target, nodes
):
    """The database poll is set to a minute: only the Redis notification can explain a
    change seen within two seconds."""
    config = write_config(tmp_path, store_url, redis_target)
    assert cli(config, "lists", "show").returncode == 0  # creates the tables
    a = nodes(store_url, redis_target, 60.0, "example.test", "203.0.113.9")
    b = nodes(store_url, redis_target, 60.0, "example.test", "203.0.113.9")
    a.wait_for("none", NODE_WAIT)
    b.wait_for("none", NODE_WAIT)

    added = cli(
        config,
        "lists",
        "add",
        "block",
        "203.0.113.0/24",
        "--reason",
        "spam run",
        "--by",
        "abuse-desk",
    )
    assert added.returncode == 0, added.stderr
    done = time.time()
    assert "added: block network 203.0.113.0/24 for every domain" in added.stdout
    for node in (a, b):
        assert node.wait_for("block", 5.0) - done < 2.0

    removed = cli(config, "lists", "remove", "block", "203.0.113.0/24")
    assert removed.returncode == 0, removed.stderr
    done = time.time()
    for node in (a, b):
        assert node.wait_for("none", 5.0) - done < 2.0


def test_without_redis_nodes_follow_the_database(tmp_path, nodes):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    config = write_config(tmp_path, url)
    assert cli(config, "lists", "show").returncode == 0
    node = nodes(url, None, 0.5, "example.test", "203.0.113.9")
    node.wait_for("none", NODE_WAIT)
    assert cli(config, "lists", "add", "allow", "203.0.113.9").returncode == 0
    node.wait_for("allow", 5.0)


def test_cli_add_show_remove_with_expiry_and_domain(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")

    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main([*args, "--config", str(config)])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run(
        "lists",
        "add",
        "block",
        "Bob@Spam.test",
        "--reason",
        "phishing",
        "--by",
        "ann",
        "--expires",
        "7d",
    )
    assert code == 0 and "added: block sender bob@spam.test for every domain until" in out
    code, out, _ = run("lists", "add", "allow", "partner.test", "--domain", "example.test")
    assert code == 0 and "for example.test" in out
    code, out, _ = run("lists", "add", "block", "mx.bad.test", "--kind", "helo")
    assert code == 0 and "HELO mx.bad.test" in out
    code, _, err = run("lists", "add", "block", "x.test", "--domain", "stranger.test")
    assert code == 2 and "stranger.test is not one of [domains] accept" in err
    code, _, err = run("lists", "add", "block", "x.test", "--expires", "2001-01-01")
    assert code == 2 and "in the past" in err
    code, _, err = run("lists", "add", "block", "300.1.1.1")
    assert code == 2 and "not an IP address" in err

    code, out, _ = run("lists", "show", "--json")
    shown = json.loads(out)["entries"]
    bob = next(e for e in shown if e["value"] == "bob@spam.test")
    assert bob["reason"] == "phishing" and bob["added_by"] == "ann" and bob["expires_at"]
    assert {e["value"]: e["domain"] for e in shown}["partner.test"] == "example.test"

    code, out, _ = run("lists", "remove", "block", "bob@spam.test")
    assert code == 0 and "removed" in out
    code, _, err = run("lists", "remove", "block", "bob@spam.test")
    assert code == 2 and "not on the block list" in err


def test_import_replaces_the_previous_import_of_its_source(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    first = tmp_path / "drop.txt"
    first.write_text("; DROP list\n192.0.2.0/24 ; SBL1\n198.51.100.0/24 ; SBL2\nspam.test\n")
    second = tmp_path / "drop2.csv"
    second.write_text("network,reason\n198.51.100.0/24,SBL2\n203.0.113.0/24,SBL3\nbogus!,x\n")

    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main([*args, "--config", str(config)])
        out = capsys.readouterr()
        return code, out.out, out.err

    assert run("lists", "add", "block", "192.0.2.0/24", "--reason", "by hand")[0] == 0
    code, out, err = run("lists", "import", str(first), "--source", "drop", "--by", "ops")
    assert code == 0 and "imported 3 block entries as 'drop'" in out
    assert "mailwarden import: read 3 entries" in err and "done in" in err  # progress
    code, out, err = run("lists", "import", str(second), "--source", "drop", "--quiet")
    assert code == 0 and "imported 2 block entries" in out and "1 bad line skipped" in out
    assert f"{second}:4: " in err and "bogus!" in err
    assert "mailwarden import:" not in err

    code, out, _ = run("lists", "show", "--json", "--source", "drop")
    values = sorted(e["value"] for e in json.loads(out)["entries"])
    assert values == ["198.51.100.0/24", "203.0.113.0/24"]  # 192.0.2.0/24 and spam.test gone
    code, out, _ = run("lists", "show", "--json")
    data = json.loads(out)
    assert [e["value"] for e in data["entries"]] == ["192.0.2.0/24"]  # the hand entry stays
    record = data["imports"][0]
    assert record["source"] == "drop" and record["entries"] == 2
    assert record["file"] == str(second) and record["imported_at"]

    # a hand removal cannot remove an imported value, and says where it comes from
    code, _, err = run("lists", "remove", "block", "203.0.113.0/24")
    assert code == 2 and "comes from the import(s) drop" in err
    # a file that is mostly garbage does not wipe the previous import
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("<html>\n<body>oops</body>\n</html>\n")
    code, _, err = run("lists", "import", str(garbage), "--source", "drop")
    assert code == 1 and "the previous import of 'drop' stays" in err
    code, out, _ = run("lists", "show", "--json", "--source", "drop")
    assert len(json.loads(out)["entries"]) == 2
    code, out, _ = run("lists", "remove", "--source", "drop")
    assert code == 0 and "(2 entries)" in out
