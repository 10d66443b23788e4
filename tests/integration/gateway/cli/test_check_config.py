"""`mailwarden check-config` and the same checks when `serve` starts, against real parts."""

from __future__ import annotations

import json
import subprocess
import time
import tomllib
from pathlib import Path

import yaml

from tests.integration.gateway.cli.operator_run import MAILWARDEN, mailwarden
from tests.support.gateway import write_config
from tests.support.smtp_sink import free_port

REPO = Path(__file__).resolve().parents[4]

MISTAKES = """\
[smtp]
listen = "127.0.0.1:2525"
max_sesions = 10
timeout = -1

[domains]
accept = ["example.test"]

[delivry]
next_hop = "127.0.0.1:25"

[spool]
path = "/tmp/x"

[store]
url = "sqlite://"

[[dnsbl]]
zone = "zen.test"
weigth = 2
"""


def test_every_mistake_at_once_with_line_key_and_suggestion(tmp_path):
    path = tmp_path / "mailwarden.toml"
    path.write_text(MISTAKES)
    done = mailwarden("check-config", "-c", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        f"{path}:3: smtp.max_sesions: unknown key; did you mean 'max_sessions'?",
        f"{path}:4: smtp.timeout: Input should be greater than 0",
        f"{path}:9: delivry: unknown section; did you mean [delivery]?",
        f"{path}:20: dnsbl.0.weigth: unknown key; did you mean 'weight'?",
        f"{path}: 4 problem(s)",
    ], done.stdout
    # the misspelt section is the mistake: no "delivery.next_hop: required key is missing"
    assert "required key" not in done.stdout


def test_serve_refuses_the_same_file_with_every_problem_and_no_traceback(tmp_path):
    path = tmp_path / "mailwarden.toml"
    path.write_text(MISTAKES)
    done = mailwarden("serve", "-c", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "did you mean [delivery]?" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 4


def _config(tmp_path, sink, dns_server, **extra):
    extra.setdefault("dns", {"nameservers": [dns_server.nameserver], "timeout": 1.0})
    return write_config(tmp_path, sink.address, extra)


def _state(stdout: str, part: str) -> str:
    for line in stdout.splitlines():
        if line.startswith(part + " "):
            return line
    raise AssertionError(f"no {part} line in:\n{stdout}")


def test_every_configured_part_answers(tmp_path, sink, dns_server, clamd, redis_target):
    dns_server.zone.add("example.test", "MX", (10, "mx.example.test."))
    config = _config(
        tmp_path,
        sink,
        dns_server,
        clamav={"address": clamd.address},
        redis={"url": redis_target.url, "prefix": redis_target.prefix},
    )
    done = mailwarden("check-config", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"{config}: ok"
    assert done.stdout.splitlines()[1].split() == ["PART", "TARGET", "STATE", "ANSWER"]
    for part in ("database", "clamd", "redis", "dns", "next hop"):
        assert " ok " in _state(done.stdout, part), done.stdout
    assert "ClamAV" in _state(done.stdout, "clamd")
    assert "mx.example.test" in _state(done.stdout, "dns")
    assert "220" in _state(done.stdout, "next hop")


def test_parts_that_do_not_answer_are_named_with_their_error(tmp_path, sink, dns_server):
    dead = f"127.0.0.1:{free_port()}"
    config = _config(
        tmp_path,
        sink,
        dns_server,
        clamav={"address": dead},
        redis={"url": f"redis://127.0.0.1:{free_port()}/0"},
    )
    config.write_text(config.read_text().replace(sink.address, f"127.0.0.1:{free_port()}"))
    done = mailwarden("check-config", "-c", str(config), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    parts = {p["part"]: p for p in json.loads(done.stdout)["parts"]}
    assert parts["database"]["ok"] and parts["dns"]["ok"]
    for name in ("clamd", "redis", "next hop"):
        assert not parts[name]["ok"], parts[name]
        detail = parts[name]["detail"].lower()
        assert any(word in detail for word in ("refused", "reach", "connect")), parts[name]
    assert parts["clamd"]["target"] == dead


def test_docker_config_is_valid_and_names_the_compose_clamd(tmp_path):
    shipped = REPO / "docker" / "mailwarden.toml"
    secret = tmp_path / "db_password"  # the docker secret, mounted in the container
    secret.write_text("x\n")
    config = tmp_path / "mailwarden.toml"
    config.write_text(shipped.read_text().replace("/run/secrets/db_password", str(secret)))
    done = mailwarden("check-config", "-c", str(config), "--no-connect")
    assert done.returncode == 0, done.stdout + done.stderr
    missing = mailwarden("check-config", "-c", str(shipped), "--no-connect")
    assert missing.returncode == 2 and "store: password_file" in missing.stdout
    clamav = tomllib.loads(config.read_text())["clamav"]
    services = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())["services"]
    host, port = clamav["address"].rsplit(":", 1)
    assert host in services and port == "3310"


def test_serve_says_once_that_clamd_does_not_answer_and_still_starts(tmp_path, sink, dns_server):
    config = _config(tmp_path, sink, dns_server, clamav={"address": f"127.0.0.1:{free_port()}"})
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [MAILWARDEN, "serve", "-c", str(config)], stdout=subprocess.PIPE, stderr=err
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert b"listening on" in line, log.read_text()
    finally:
        proc.terminate()
        proc.wait(60)
    text = log.read_text()
    assert "Traceback" not in text
    clamd_lines = [line for line in text.splitlines() if "clamd" in line]
    assert len(clamd_lines) == 1, text
    assert " ERROR " in clamd_lines[0] and "does not answer" in clamd_lines[0]
    assert "451" in clamd_lines[0]


def test_serve_with_an_unreachable_database_is_one_error_line(tmp_path, sink, dns_server):
    config = _config(tmp_path, sink, dns_server)
    url = f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/none"
    config.write_text(config.read_text().replace(f"sqlite:///{tmp_path / 'ledger.db'}", url))
    started = time.monotonic()
    done = subprocess.run(
        [MAILWARDEN, "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "database" in errors[0] and "127.0.0.1" in errors[0], done.stderr
    assert time.monotonic() - started < 100
