"""docker/ as an operator gets it: the compose file validates with Debian's docker-compose,
the gateway config it mounts is a valid one that holds no password, the image runs as
a user and its HEALTHCHECK asks the gateway. No Docker engine runs here: nothing is built
or started (docs/deploy.md says what was and was not run)."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="docker-compose not installed (Debian package docker-compose: make system-deps)",
)


def _compose(*args: str) -> subprocess.CompletedProcess:
    assert COMPOSE is not None
    return subprocess.run(
        [COMPOSE, "-f", str(DOCKER / "compose.yaml"), *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


@needs_compose
def test_compose_file_validates():
    done = _compose("config", "-q")
    assert done.returncode == 0, done.stderr


@needs_compose
def test_compose_runs_what_issue_13_lists():
    done = _compose("config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert {"gateway-1", "gateway-2", "postgres", "redis", "clamd", "freshclam", "mailserver",
            "backup", "config-backup"} <= set(services)  # fmt: skip

    def volumes(name: str) -> set[str]:
        found = set()
        for v in services[name].get("volumes", []):
            found.add(v["source"] if isinstance(v, dict) else v.split(":")[0])
        return found

    # clamd and freshclam share one signature volume; each node its own spool
    assert "signatures" in volumes("clamd") & volumes("freshclam")
    assert "spool-1" in volumes("gateway-1") and "spool-2" in volumes("gateway-2")
    assert "spool-1" not in volumes("gateway-2")
    assert "pgdata" in volumes("postgres")
    # the database password is a secret, never a value in the compose file
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "POSTGRES_PASSWORD" not in services["postgres"]["environment"]
    for node in ("gateway-1", "gateway-2", "backup", "config-backup"):
        assert [s["source"] if isinstance(s, dict) else s for s in services[node]["secrets"]] == [
            "db_password"
        ]
    # the daily jobs keep seven
    assert services["backup"]["environment"]["KEEP"] == "7"
    assert services["config-backup"]["environment"]["KEEP"] == "7"
    assert "pg_dump" in " ".join(services["backup"]["command"])
    assert "mailwarden backup --out" in " ".join(services["config-backup"]["command"])


@needs_compose
def test_compose_postfix_sends_its_outbound_mail_through_the_gateways(tmp_path):
    """Issue 13's left-over: the protected server's users' mail leaves scanned, and only
    that server (not the whole compose network) is trusted to relay."""
    done = _compose("config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    server = config["services"]["mailserver"]
    env = server["environment"]
    listen_port = tomllib.loads((DOCKER / "mailwarden.toml").read_text())["smtp"]["listen"]
    listen_port = listen_port.rsplit(":", 1)[1]
    assert env["RELAYHOST"] == f"[gateway-1]:{listen_port}"
    assert env["FALLBACK_RELAY"] == f"[gateway-2]:{listen_port}"
    # the relay host settings reach Postfix's main.cf
    entrypoint = (DOCKER / "postfix" / "entrypoint.sh").read_text()
    assert '"relayhost = ${RELAYHOST}"' in entrypoint
    assert '"smtp_fallback_relay = ${FALLBACK_RELAY}"' in entrypoint

    address = ipaddress.ip_address(server["networks"]["default"]["ipv4_address"])
    subnet = ipaddress.ip_network(config["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert address in subnet and ipaddress.ip_network(env["MAIL_NETWORKS"]) == subnet

    secret = tmp_path / "db_password"
    secret.write_text("s3cret\n")
    toml = tmp_path / "mailwarden.toml"
    text = (DOCKER / "mailwarden.toml").read_text()
    toml.write_text(text.replace("/run/secrets/db_password", str(secret)))
    trusted = load_settings(toml).outbound.trusted_networks
    assert trusted == [f"{address}/32"]  # that server alone, not the gateways' neighbours


def test_no_password_in_docker_files():
    for path in [*DOCKER.glob("*"), *DOCKER.glob("postfix/*")]:
        if path.is_file():
            text = path.read_text()
            assert "change-me" not in text, path
            assert not re.search(r"postgresql\+\w+://[^@/\s]*:[^@/\s]*@", text), path


def test_compose_gateway_config_is_complete_and_valid(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("s3cret\n")
    text = (DOCKER / "mailwarden.toml").read_text()
    assert '"/run/secrets/db_password"' in text
    config = tmp_path / "mailwarden.toml"
    config.write_text(text.replace("/run/secrets/db_password", str(secret)))
    settings = load_settings(config)
    assert settings.clamav is not None and settings.clamav.address == "clamd:3310"
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.delivery.next_hop == "mailserver:25"
    # the password comes from the secret file, into the URL the store uses
    assert settings.store.url == "postgresql+psycopg2://mailwarden:s3cret@postgres:5432/mailwarden"
    data = tomllib.loads(text)
    assert "password" not in data["store"]["url"]


def test_a_missing_password_file_names_key_and_line(tmp_path):
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        '[domains]\naccept = ["example.test"]\n[delivery]\nnext_hop = "127.0.0.1:25"\n'
        f'[spool]\npath = "{tmp_path}"\n[store]\nurl = "postgresql+psycopg2://mw@db/mw"\n'
        f'password_file = "{tmp_path / "absent"}"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert f"{config}:7: store: password_file {tmp_path / 'absent'}" in str(err.value)


def test_dockerfile_runs_as_a_user_with_a_healthcheck_asking_the_gateway():
    text = (DOCKER / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]  # the stage that ships
    users = re.findall(r"^USER (\S+)", final, re.M)
    assert users and users[-1] not in ("root", "0")
    check = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])", final, re.M | re.S)
    assert check, "no HEALTHCHECK"
    assert check[1].startswith('["mailwarden", "health"')
    # the wheel carries the rules data: the image copies rules/ into the build stage
    assert "COPY rules rules" in text and "setup.py" in text


def test_health_command_asks_the_listener(gateway):
    ok = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "health", "--config", str(gateway.config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ": ok: 220 " in ok.stdout


def test_health_command_fails_when_nothing_listens(tmp_path):
    from tests.support.gateway import write_config
    from tests.support.smtp_sink import free_port

    config = write_config(tmp_path, f"127.0.0.1:{free_port()}")
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "health", "--config", str(config), "--timeout", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "FAILED" in done.stdout
