"""`mailwarden selfcheck` against the real loopback DNS server: where our own sending
addresses are listed, and what the list's code means."""

from __future__ import annotations

import json

from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.gateway import write_config


def _config(tmp_path, dns_server, addresses):
    config = write_config(
        tmp_path,
        "127.0.0.1:9",
        {
            "dns": {"nameservers": [dns_server.nameserver], "timeout": 1.0},
            "outbound": {"sending_addresses": addresses},
        },
    )
    with config.open("a") as fh:
        fh.write(
            '\n[[dnsbl]]\nzone = "bl.test"\n'
            '[dnsbl.codes]\n"127.0.0.2" = { meaning = "spam source" }\n'
            '\n[[dnsbl]]\nzone = "other-bl.test"\n'
        )
    return config


def test_says_where_an_own_address_is_listed(tmp_path, dns_server):
    dns_server.zone.add("7.2.0.192.bl.test", "A", "127.0.0.2")
    config = _config(tmp_path, dns_server, ["192.0.2.7", "192.0.2.8"])
    done = mailwarden("selfcheck", "-c", str(config))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "192.0.2.7 is listed in bl.test: spam source (127.0.0.2)" in done.stdout
    assert "192.0.2.8 is listed" not in done.stdout
    rows = json.loads(mailwarden("selfcheck", "--json", "-c", str(config)).stdout)
    states = {(r["address"], r["zone"]): r["state"] for r in rows}
    assert states == {
        ("192.0.2.7", "bl.test"): "listed",
        ("192.0.2.7", "other-bl.test"): "not listed",
        ("192.0.2.8", "bl.test"): "not listed",
        ("192.0.2.8", "other-bl.test"): "not listed",
    }
    assert ("8.2.0.192.other-bl.test", "A") in dns_server.zone.queries


def test_clean_addresses_exit_0_and_a_failing_zone_is_named(tmp_path, dns_server):
    config = _config(tmp_path, dns_server, ["192.0.2.8"])
    done = mailwarden("selfcheck", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "listed nowhere" in done.stdout
    dns_server.zone.fail("8.2.0.192.other-bl.test")
    failed = mailwarden("selfcheck", "-c", str(config))
    assert failed.returncode == 1
    assert "other-bl.test" in failed.stdout and "failed" in failed.stdout


def test_nothing_to_check_is_said(tmp_path, dns_server):
    config = _config(tmp_path, dns_server, [])
    done = mailwarden("selfcheck", "-c", str(config))
    assert done.returncode == 2 and "[outbound] sending_addresses" in done.stderr
