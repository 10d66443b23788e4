"""Typed, frozen settings read from one TOML file.

Every key is documented in docs/configuration.md. Unknown keys are errors (a typo
must not silently fall back to a default), and any error becomes one line naming
the file and the key: `ConfigError`, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)


class ConfigError(Exception):
    """A configuration problem, already phrased for the operator."""


def parse_host_port(value: str, any_port: bool = False) -> tuple[str, int]:
    """'127.0.0.1:25', '[::1]:25' or 'mx.example:25' -> (host, port); `any_port`
    allows port 0 (a listening socket on a port the system picks)."""
    text = value.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    lowest = 0 if any_port else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f'expected "host:port", got {value!r}')
    return host, int(port)


def _check_host_port(value: str) -> str:
    parse_host_port(value)
    return value


HostPort = Annotated[str, AfterValidator(_check_host_port)]
Seconds = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SmtpSettings(Section):
    listen: HostPort = "127.0.0.1:2525"
    hostname: str = "localhost"
    max_message_size: int = Field(26_214_400, gt=0)
    max_recipients: int = Field(100, gt=0)
    max_sessions: int = Field(200, gt=0)
    max_sessions_per_ip: int = Field(20, gt=0)
    timeout: Seconds = 300.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    shutdown_grace: Seconds = 30.0
    processes: int = Field(1, ge=1, le=64)  # gateways sharing the port (SO_REUSEPORT)

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a host name without spaces")
        return value


class DomainsSettings(Section):
    accept: list[str] = Field(default_factory=list)

    @field_validator("accept")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not domain or "@" in domain or any(c.isspace() for c in domain):
                raise ValueError(f"{domain!r} is not a domain name")
        return [d.lower().rstrip(".") for d in value]


class DeliverySettings(Section):
    next_hop: HostPort = "127.0.0.1:2626"
    workers: int = Field(8, gt=0)
    retry_schedule: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [60.0, 300.0, 900.0, 1800.0, 3600.0]
    )
    retry_window: Seconds = 5 * 24 * 3600.0
    connect_timeout: Seconds = 30.0
    command_timeout: Seconds = 300.0
    bounce_relay: HostPort | None = None
    poll_interval: Seconds = 1.0


class SpoolSettings(Section):
    path: Path = Path("/var/spool/mailwarden")


class StoreSettings(Section):
    url: str = "sqlite:////var/lib/mailwarden/ledger.db"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        return value


class ThresholdSettings(Section):
    tag: float | None = 5.0
    quarantine: float | None = 10.0
    reject: float | None = 15.0


class PolicySettings(Section):
    thresholds: ThresholdSettings = ThresholdSettings()
    subject_tag: str = "[SPAM]"
    symbols: dict[str, float] = Field(default_factory=dict)  # weight overrides
    # what a failed DMARC p=reject does by default (domain policies may differ):
    # honour = reject, quarantine = quarantine instead, score = symbols only
    dmarc: Literal["honour", "quarantine", "score"] = "honour"


class PipelineSettings(Section):
    budget: Seconds = 20.0
    disable: list[str] = Field(default_factory=list)  # filter names left out of the chain


class DnsSettings(Section):
    nameservers: list[HostPort | str] = Field(default_factory=list)  # empty: system resolver
    timeout: Seconds = 2.0
    budget: Seconds = 8.0
    cache_size: int = Field(10000, ge=0)  # answers kept for their TTL; 0: none


class ClamavSettings(Section):
    socket: Path | None = None
    address: HostPort | None = None
    timeout: Seconds = 30.0
    on_error: Literal["tempfail", "accept"] = "tempfail"
    workers: int = Field(4, gt=0)  # threads, each with its own clamd connection
    stream_max_length: int = Field(25 * 1024 * 1024, gt=0)  # clamd's StreamMaxLength, bytes
    # a part too large for clamd, or over clamd's archive limits, in "clean" mode
    on_unscannable: Literal["quarantine", "reject", "accept"] = "quarantine"
    attachment_retention_days: int = Field(30, ge=0)  # for `rescan`; 0: keep none


class QuarantineSettings(Section):
    retention_days: int = Field(30, gt=0)  # held items older than this are purged


class RedisSettings(Section):
    url: str | None = None
    prefix: str = "mailwarden:"  # every key this gateway writes starts with it


def _check_zone(value: str) -> str:
    zone = value.strip().lower().rstrip(".")
    labels = zone.split(".")
    if len(labels) < 2 or any(not label or len(label) > 63 for label in labels):
        raise ValueError(f"{value!r} is not a DNS zone name")
    if any(not all(c.isalnum() or c in "-_" for c in label) for label in labels):
        raise ValueError(f"{value!r} is not a DNS zone name")
    return zone


def _check_code(value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"return code {value!r} is not an IPv4 address like 127.0.0.2") from None
    if not address.is_loopback:
        raise ValueError(f"return code {value} is outside 127.0.0.0/8")
    return str(address)


def _check_meaning(value: str) -> str:
    if not value.strip() or not value.isascii() or not value.isprintable() or len(value) > 80:
        raise ValueError("meaning must be short plain ASCII text (it appears in SMTP replies)")
    return value.strip()


ZoneName = Annotated[str, AfterValidator(_check_zone)]
ReturnCode = Annotated[str, AfterValidator(_check_code)]


class ZoneCode(Section):
    """The meaning of one return code (127.0.0.x) of a list, and what it weighs."""

    meaning: Annotated[str, AfterValidator(_check_meaning)]
    weight: float | None = None  # None: the zone's weight
    reject: bool | None = None  # None: the zone's reject (DNSBL only)


class UriblZone(Section):
    """A URI blocklist: the registered domains of URLs in the body are looked up."""

    zone: ZoneName
    weight: float = 5.0  # for a listed answer whose code has no entry in `codes`
    timeout: Seconds | None = None  # per query; None: [dns] timeout
    codes: dict[ReturnCode, ZoneCode] = Field(default_factory=dict)


class DnsblZone(UriblZone):
    """An IP blocklist queried with the client address (IPv4 and IPv6)."""

    reject: bool = False  # refuse at RCPT (550 5.7.1 naming the list) when listed


class BlocklistSettings(Section):
    budget: Seconds = 5.0  # all DNSBL/URIBL queries of one message together
    max_uri_domains: int = Field(20, ge=0)  # URL domains looked up per message
    check_private: bool = False  # also query lists for private/loopback client addresses
    negative_ttl: int = Field(300, ge=0)  # seconds a "not listed" answer is cached
    max_ttl: int = Field(3600, ge=0)  # cap on the cached lifetime of any answer
    cache_size: int = Field(50_000, gt=0)  # in-process cache entries (no Redis)
    list_refresh: Seconds = 5.0  # seconds between checks of the database for list changes


class RulesSettings(Section):
    dir: Path | None = None
    reload_interval: Seconds = 2.0  # seconds between checks of the files for changes


class ClassifierSettings(Section):
    model: Path | None = None  # None: the baseline shipped in rules/models/
    enabled: bool = True


class LogSettings(Section):
    format: Literal["text", "json"] = "text"  # json: one object a line (docs/operations.md)


def _check_listen(value: str) -> str:
    parse_host_port(value, any_port=True)
    return value


class MetricsSettings(Section):
    # e.g. "127.0.0.1:9125" (port 0: one the system picks); None: no metrics endpoint
    listen: Annotated[str, AfterValidator(_check_listen)] | None = None


class ReportSettings(Section):
    """The service report: which guarantee profile (rules/guarantees/*.toml) applies."""

    profile: str = "strict"  # the default for every domain
    profiles_dir: Path | None = None  # the operator's own profiles, beside the shipped ones
    domain_profiles: dict[str, str] = Field(default_factory=dict)  # domain -> profile
    heartbeat_interval: Seconds = 30.0  # how often each node records that it accepts mail
    probe_next_hop: bool = True  # each heartbeat checks that the next hop greets with 220
    probe_timeout: Seconds = 10.0
    # report addresses: local parts that, at every accepted domain, take users' reports
    # (the mail they forward or bounce there) instead of delivering them; None: off
    spam_address: str | None = None  # e.g. "spam-report": "this was spam"
    ham_address: str | None = None  # e.g. "not-spam": "this was legitimate"
    virus_address: str | None = None  # e.g. "virus-report": "this carried a virus"

    @field_validator("spam_address", "ham_address", "virus_address")
    @classmethod
    def _local_part(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or "@" in value or any(c.isspace() or c in "<>," for c in value):
            raise ValueError(f'{value!r}: give the local part only, e.g. "spam-report"')
        return value.lower()

    @field_validator("domain_profiles")
    @classmethod
    def _lower_domains(cls, value: dict[str, str]) -> dict[str, str]:
        return {d.lower().rstrip("."): name for d, name in value.items()}


class Settings(Section):
    smtp: SmtpSettings = SmtpSettings()
    domains: DomainsSettings = DomainsSettings()
    delivery: DeliverySettings = DeliverySettings()
    spool: SpoolSettings = SpoolSettings()
    store: StoreSettings = StoreSettings()
    policy: PolicySettings = PolicySettings()
    pipeline: PipelineSettings = PipelineSettings()
    dns: DnsSettings = DnsSettings()
    clamav: ClamavSettings | None = None
    quarantine: QuarantineSettings = QuarantineSettings()
    redis: RedisSettings = RedisSettings()
    dnsbl: list[DnsblZone] = Field(default_factory=list)
    uribl: list[UriblZone] = Field(default_factory=list)
    blocklist: BlocklistSettings = BlocklistSettings()
    rules: RulesSettings = RulesSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    report: ReportSettings = ReportSettings()

    def accepts(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains.accept


REQUIRED = ("domains.accept", "delivery.next_hop", "spool.path", "store.url")


def load_settings(path: str | Path) -> Settings:
    """Read and validate a TOML file; every failure is a ConfigError of one line."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for dotted in REQUIRED:
        node: object = data
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            raise ConfigError(f"{path}: {dotted}: required key is missing")
    return settings_from_dict(data, source=str(path))


def settings_from_dict(data: dict, source: str = "<config>") -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (see docs/configuration.md)"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        raise ConfigError(f"{source}: {key}: {message}") from None
    _check_consistency(settings, source)
    return settings


def _check_consistency(settings: Settings, source: str) -> None:
    smtp = settings.smtp
    if (smtp.tls_cert is None) != (smtp.tls_key is None):
        raise ConfigError(f"{source}: smtp.tls_cert: tls_cert and tls_key go together")
    if smtp.require_tls and smtp.tls_cert is None:
        raise ConfigError(f"{source}: smtp.require_tls: needs smtp.tls_cert and smtp.tls_key")
    for key in ("tls_cert", "tls_key"):
        value = getattr(smtp, key)
        if value is not None and not value.is_file():
            raise ConfigError(f"{source}: smtp.{key}: file not found: {value}")
    av = settings.clamav
    if av is not None and (av.socket is None) == (av.address is None):
        raise ConfigError(f"{source}: clamav: set exactly one of socket or address")
    host, _ = parse_host_port(smtp.listen)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(
                f"{source}: smtp.listen: host must be an IP address, got {host!r}"
            ) from None
