"""Does every configured part answer? Used by `check-config` and by `serve` at start.

One probe per part (database, clamd, Redis, DNS, next hop, bounce relay), each with
its own timeout, all at once; a probe never raises: it says what answered or why not.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from dataclasses import asdict, dataclass

from gateway.config import Settings, parse_host_port

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ProbeResult:
    part: str  # "database", "clamd", "redis", "dns", "next hop", "bounce relay"
    target: str  # what was asked: URL (without password), address, socket
    ok: bool
    detail: str  # the answer (version, banner) or the error
    required: bool  # False: the gateway runs without it (degraded)

    def as_json(self) -> dict:
        return asdict(self)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _database(settings: Settings) -> str:
    from sqlalchemy import text

    from gateway.store.db import make_engine

    engine = make_engine(settings.store.url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            return f"{engine.dialect.name} answered"
    finally:
        engine.dispose()


def _clamd(settings: Settings) -> str:
    from gateway.adapters.clamd import ClamdClient

    assert settings.clamav is not None
    client = ClamdClient.from_settings(settings.clamav)
    try:
        version = client.version_sync()
        db = f", database {version.db_version}" if version.db_version else ""
        return f"ClamAV {version.engine}{db}"
    finally:
        client.close()


async def _redis(settings: Settings) -> str:
    from gateway.adapters.redis import connect

    client = connect(settings)
    try:
        await client.ping()
        return "PONG"
    finally:
        await client.aclose()


async def _dns(settings: Settings) -> str:
    """The MX of the first accepted domain: any answer (even "no such name") is an answer."""
    from gateway.adapters.dns import NoRecord, Resolver

    domain = (settings.domains.accept or ["localhost"])[0]
    resolver = Resolver(settings.dns)
    try:
        mx = await resolver.mx(domain, timeout=min(settings.dns.timeout, PROBE_TIMEOUT))
    except NoRecord:
        return f"answered (no MX for {domain})"
    return f"answered (MX of {domain}: {', '.join(h for _, h in mx) or 'none'})"


def _smtp(address: str, timeout: float) -> str:
    host, port = parse_host_port(address)
    client = smtplib.SMTP(timeout=timeout)
    try:
        code, banner = client.connect(host, port)
        if code != 220:
            raise ConnectionError(f"greeting {code} {banner.decode(errors='replace')}")
        client.ehlo_or_helo_if_needed()
        return f"220 {banner.decode(errors='replace').splitlines()[0]}"
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


async def _timed(part: str, target: str, required: bool, work) -> ProbeResult:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(work, PROBE_TIMEOUT + 1)
    except TimeoutError:
        return ProbeResult(part, target, False, f"no answer within {PROBE_TIMEOUT:.0f} s", required)
    except Exception as exc:  # noqa: BLE001 - every failure is the probe's answer
        return ProbeResult(part, target, False, _error(exc), required)
    took = (time.monotonic() - started) * 1000
    return ProbeResult(part, target, True, f"{detail} ({took:.0f} ms)", required)


def _dns_target(settings: Settings) -> str:
    return ", ".join(settings.dns.nameservers) or "system resolver"


async def probe_all(settings: Settings) -> list[ProbeResult]:
    """Ask every configured part at once; results in a fixed order."""
    timeout = min(settings.delivery.connect_timeout, PROBE_TIMEOUT)
    probes = [
        _timed(
            "database",
            _safe_url(settings.store.url),
            True,
            asyncio.to_thread(_database, settings),
        )
    ]
    if settings.clamav is not None:
        av = settings.clamav
        target = str(av.socket) if av.socket else str(av.address)
        # with on_error = tempfail every message waits for clamd: the gateway needs it
        required = av.on_error == "tempfail"
        probes.append(_timed("clamd", target, required, asyncio.to_thread(_clamd, settings)))
    if settings.redis.url:
        probes.append(_timed("redis", _safe_url(settings.redis.url), False, _redis(settings)))
    probes.append(_timed("dns", _dns_target(settings), False, _dns(settings)))
    probes.append(
        _timed(
            "next hop",
            settings.delivery.next_hop,
            False,
            asyncio.to_thread(_smtp, settings.delivery.next_hop, timeout),
        )
    )
    if settings.delivery.bounce_relay:
        relay = settings.delivery.bounce_relay
        probes.append(
            _timed("bounce relay", relay, False, asyncio.to_thread(_smtp, relay, timeout))
        )
    return list(await asyncio.gather(*probes))


_CONSEQUENCE = {
    "database": "the gateway cannot start without its ledger",
    "clamd": "mail waits (451 4.3.0) until it answers",
    "redis": "this node works alone (no shared cache or list notifications) until it answers",
    "dns": "SPF, DKIM, DMARC and blocklist checks give temperror until it answers",
    "next hop": "accepted mail stays queued until it answers",
    "bounce relay": "bounces stay queued until it answers",
}


def startup_checks(settings: Settings, log: logging.Logger) -> bool:
    """Probe every part and log one line for each that does not answer (ERROR when the
    gateway cannot work without it, else WARNING). False: do not start."""
    results = asyncio.run(probe_all(settings))
    fatal = False
    for r in results:
        if r.ok:
            log.info("%s %s answers: %s", r.part, r.target, r.detail)
            continue
        if r.part == "database":
            fatal = True
        level = logging.ERROR if r.required else logging.WARNING
        log.log(level, "%s %s does not answer: %s; %s", r.part, r.target, r.detail,
                _CONSEQUENCE[r.part])  # fmt: skip
    return not fatal


def _own_address(listen: str) -> str:
    """Where to reach our own listener: a wildcard bind is asked on loopback."""
    host, port = parse_host_port(listen, any_port=True)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def probe_self(settings: Settings, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    """Does this node's own SMTP listener greet with 220? The container HEALTHCHECK and
    `mailwarden health`: the gateway itself answers, not merely its process running."""
    address = _own_address(settings.smtp.listen)
    return await _timed("gateway", address, True, asyncio.to_thread(_smtp, address, timeout))
