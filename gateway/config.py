"""Typed, frozen settings read from one TOML file.

Every key is documented in docs/configuration.md. Unknown keys are errors (a typo
must not silently fall back to a default, and the closest known name is suggested),
and every error in a file is found at once, one line each naming the file, the line
and the key: `ConfigError`, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.durations import seconds_of


class ConfigError(Exception):
    """A configuration problem, already phrased for the operator."""


WORKER_MARK = "/w"  # node name + "/w<index>": one worker process of several


def node_name(settings: Settings, worker: tuple[int, int] = (0, 1)) -> str:
    """This node's name in the ledger, heartbeats and queue requests: [smtp] node_name
    (else the host name), and with several worker processes, which worker."""
    name = settings.smtp.node_name or socket.gethostname()
    return name + (f"{WORKER_MARK}{worker[0]}" if worker[1] > 1 else "")


def is_this_node(settings: Settings, node: str) -> bool:
    """Whether `node` (as node_name writes it) is this machine or one of its workers,
    which all share its spool."""
    name = node_name(settings)
    index = node[len(name) + len(WORKER_MARK) :]
    return node == name or (node.startswith(name + WORKER_MARK) and index.isdigit())


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


def _duration(value: Any) -> Any:
    """`"30s"`, `"5d"` as well as a number of seconds (the number stays as it is)."""
    return seconds_of(value) if isinstance(value, str) else value


Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


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
    idle_timeout: Seconds = 30.0  # silence allowed before MAIL (a third of it near max_sessions)
    max_sessions_per_network: int | None = Field(None, gt=0)  # per /24 or /48; None: a quarter
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    shutdown_grace: Seconds = 30.0
    processes: int = Field(
        1, ge=0, le=64
    )  # gateways sharing the port (SO_REUSEPORT); 0: a core each
    node_name: str | None = None  # in the ledger and heartbeats; None: the host name
    max_mime_depth: int = Field(50, gt=0)  # nested multiparts/messages; deeper: 550 5.6.0
    max_mime_parts: int = Field(10_000, gt=0)  # MIME entities per message; more: 550 5.6.0

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a host name without spaces")
        return value

    @field_validator("processes")
    @classmethod
    def _processes(cls, value: int) -> int:
        """0: one gateway per core this process may run on (its CPU affinity)."""
        if value:
            return value
        try:
            return max(1, min(64, len(os.sched_getaffinity(0))))
        except AttributeError:  # not Linux
            return max(1, min(64, os.cpu_count() or 1))


class DomainsSettings(Section):
    accept: list[str] = Field(default_factory=list)
    # domains whose recipients may carry routing syntax in the local part (percent
    # hack, bang paths, a quoted address): refused with 550 5.7.1 everywhere else
    allow_routing_syntax: list[str] = Field(default_factory=list)

    @field_validator("accept", "allow_routing_syntax")
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
    # seconds between checks of the database for queue actions asked on another node's
    # console; with [redis] url a request arrives at once by a Redis message
    request_refresh: Seconds = 5.0


class SpoolSettings(Section):
    path: Path = Path("/var/spool/mailwarden")


class StoreSettings(Section):
    url: str = "sqlite:////var/lib/mailwarden/ledger.db"
    # the database password read from a file (a docker secret, a 0600 file), so that the
    # configuration file itself holds none; it fills in the URL's password
    password_file: Path | None = None

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

    @model_validator(mode="after")
    def _password_from_file(self) -> StoreSettings:
        if self.password_file is None:
            return self
        from sqlalchemy.engine import make_url

        try:
            password = self.password_file.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ValueError(f"password_file {self.password_file}: {exc.strerror}") from exc
        url = make_url(self.url).set(password=password)
        object.__setattr__(self, "url", url.render_as_string(hide_password=False))
        return self


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
    policy_refresh: Seconds = 5.0  # seconds between reads of the AV policies (Redis: at once)


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
    db_refresh: Seconds = 2.0  # seconds between checks of the database for rule changes


class ClassifierSettings(Section):
    model: Path | None = None  # None: the baseline shipped in rules/models/
    enabled: bool = True


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"not an IP network: {value!r} (e.g. 10.0.0.0/8)") from None
    return value


def _check_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None
    return value


class OutboundSettings(Section):
    # clients that may send to any domain (scanned, then relayed to the recipient's MX);
    # empty: nobody, the gateway takes mail only for [domains] accept
    trusted_networks: list[Annotated[str, AfterValidator(_check_network)]] = Field(
        default_factory=list
    )
    relay: HostPort | None = None  # a smarthost for outbound mail instead of the MX
    mx_port: int = Field(25, gt=0, lt=65536)  # the port of MX hosts (tests use another)
    suspend_score: float | None = 15.0  # an outbound message scoring this: sender suspended
    rate_limit: int | None = Field(None, gt=0)  # messages per account per rate_window
    rate_window: Seconds = 3600.0
    suspended_reply: Literal["tempfail", "reject"] = "reject"  # 450 4.7.1 or 550 5.7.1
    suspend_on_virus: bool = True  # an outbound message carrying a virus suspends its sender
    # how long a node keeps its answer to "is this account suspended?" (a change made
    # elsewhere reaches it at once through Redis, else within this time)
    suspension_cache: Seconds = 5.0
    # our own public sending addresses, for `mailwarden selfcheck`
    sending_addresses: list[Annotated[str, AfterValidator(_check_ip)]] = Field(default_factory=list)
    # the submission port: users log in (AUTH PLAIN/LOGIN, only inside TLS with
    # [smtp] tls_cert) and send to any domain, scanned like trusted-network mail
    submission_listen: HostPort | None = None  # e.g. "0.0.0.0:587", STARTTLS
    submission_tls_listen: HostPort | None = None  # e.g. "0.0.0.0:465", implicit TLS
    auth_sender: Literal["account", "domain"] = "account"  # MAIL FROM: the account or its domain
    auth_max_failures_account: int = Field(5, gt=0)  # failed logins per account in auth_window
    auth_max_failures_address: int = Field(20, gt=0)  # ... and per client address
    auth_window: Seconds = 900.0


class LogSettings(Section):
    format: Literal["text", "json"] = "text"  # json: one object a line (docs/operations.md)


def _check_listen(value: str) -> str:
    parse_host_port(value, any_port=True)
    return value


class MetricsSettings(Section):
    # e.g. "127.0.0.1:9125" (port 0: one the system picks); None: no metrics endpoint
    listen: Annotated[str, AfterValidator(_check_listen)] | None = None


class WebSettings(Section):
    """The console and JSON API (gateway/web/): where it listens, sessions, login limits."""

    # e.g. "127.0.0.1:8025": `mailwarden serve` serves the console too; None: it does not
    listen: Annotated[str, AfterValidator(_check_listen)] | None = None
    # a file holding the cookie-signing key, the same on every node; None: a key per process
    secret_file: Path | None = None
    session_hours: float = Field(8.0, gt=0)  # a console session ends after this long
    idle_minutes: float = Field(30.0, gt=0)  # ... or after this long without a request
    token_hours: float = Field(12.0, gt=0)  # POST /api/token: bearer tokens last this long
    login_max_failures_user: int = Field(5, gt=0)  # failed logins per user name in the window
    login_max_failures_address: int = Field(20, gt=0)  # ... and per client address
    login_window_minutes: float = Field(15.0, gt=0)
    secure_cookies: bool = False  # set behind TLS (a reverse proxy): cookies only over https


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
    outbound: OutboundSettings = OutboundSettings()
    web: WebSettings = WebSettings()

    def accepts(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains.accept


REQUIRED = ("domains.accept", "delivery.next_hop", "spool.path", "store.url")


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a config file: the dotted key, its line when known, and what is wrong."""

    key: str
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def load_settings(path: str | Path) -> Settings:
    """Read and validate a TOML file; every problem in it, one line each, in a ConfigError."""
    settings, problems = check_settings_file(path)
    if problems or settings is None:
        raise ConfigError("\n".join(p.render(str(path)) for p in problems))
    return settings


def check_settings_file(path: str | Path) -> tuple[Settings | None, list[ConfigProblem]]:
    """The settings of a TOML file, or every problem found in it (all at once, by line)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        return None, [ConfigProblem("", "config file not found")]
    except OSError as exc:
        return None, [ConfigProblem("", f"cannot read config file: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, [ConfigProblem("", "not valid TOML: not UTF-8 text")]
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        return None, [ConfigProblem("", f"not valid TOML: {exc}", int(line[1]) if line else None)]
    lines = key_lines(text)
    settings, problems = _validate(data)
    # a misspelt [delivry] is the problem; delivery's missing keys follow from it
    suggested = {m[1] for p in problems if (m := re.search(r"did you mean \[(\w+)\]", p.message))}
    for dotted in REQUIRED:
        node: object = data
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None and dotted.split(".")[0] not in suggested:
            problems.append(ConfigProblem(dotted, "required key is missing"))
    if settings is not None and not problems:
        problems = _check_consistency(settings)
    located = [ConfigProblem(p.key, p.message, p.line or _line_of(p.key, lines)) for p in problems]
    located.sort(key=lambda p: (p.line is None, p.line or 0))
    return (settings if not located else None), located


def settings_from_dict(data: dict, source: str = "<config>") -> Settings:
    settings, problems = _validate(data)
    if settings is not None and not problems:
        problems = _check_consistency(settings)
    if problems or settings is None:
        raise ConfigError("\n".join(p.render(source) for p in problems))
    return settings


def _validate(data: dict) -> tuple[Settings | None, list[ConfigProblem]]:
    try:
        return Settings.model_validate(data), []
    except ValidationError as exc:
        return None, [_problem(err) for err in exc.errors()]


def _problem(err: Any) -> ConfigProblem:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = _unknown(loc)
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return ConfigProblem(key, message)


def _unknown(loc: tuple) -> str:
    """'unknown key', with the closest known name when there is one ("did you mean")."""
    model = _model_at(loc[:-1])
    what = "section" if len(loc) == 1 else "key"
    known = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if not close:
        return f"unknown {what} (see docs/configuration.md)"
    if what == "section":
        return f"unknown section; did you mean [{close[0]}]?"
    return f"unknown key; did you mean {close[0]!r}?"


def _model_at(path: tuple) -> type[BaseModel] | None:
    """The settings model that a (dotted) path inside the file points into."""
    model: type[BaseModel] | None = Settings
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _model_in(field.annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


_TABLE = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\"' -]+?)\s*=")


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each table and key of a TOML text starts: ('dnsbl', '0', 'zone') -> line."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            table = tuple(part.strip().strip("\"'") for part in header[2].split("."))
            if header[1]:  # [[array]]: the next index
                arrays[table] = arrays.get(table, -1) + 1
                table = (*table, str(arrays[table]))
            found.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            parts = tuple(part.strip().strip("\"'") for part in key[1].split("."))
            found.setdefault((*table, *parts), number)
    return found


def _line_of(dotted: str, lines: dict[tuple[str, ...], int]) -> int | None:
    parts = tuple(dotted.split("."))
    for end in range(len(parts), 0, -1):
        if parts[:end] in lines:
            return lines[parts[:end]]
    return None


def _check_consistency(settings: Settings) -> list[ConfigProblem]:
    """Rules that span keys; each broken one is a problem (none raised)."""
    problems: list[ConfigProblem] = []
    smtp = settings.smtp
    if (smtp.tls_cert is None) != (smtp.tls_key is None):
        problems.append(ConfigProblem("smtp.tls_cert", "tls_cert and tls_key go together"))
    if smtp.require_tls and smtp.tls_cert is None:
        problems.append(ConfigProblem("smtp.require_tls", "needs smtp.tls_cert and smtp.tls_key"))
    for key in ("tls_cert", "tls_key"):
        value = getattr(smtp, key)
        if value is not None and not value.is_file():
            problems.append(ConfigProblem(f"smtp.{key}", f"file not found: {value}"))
    out = settings.outbound
    for key in ("submission_listen", "submission_tls_listen"):
        if getattr(out, key) is not None and smtp.tls_cert is None:
            problems.append(
                ConfigProblem(
                    f"outbound.{key}", "needs smtp.tls_cert and smtp.tls_key (AUTH only over TLS)"
                )
            )
    av = settings.clamav
    if av is not None and (av.socket is None) == (av.address is None):
        problems.append(ConfigProblem("clamav", "set exactly one of socket or address"))
    host, _ = parse_host_port(smtp.listen)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            problems.append(
                ConfigProblem("smtp.listen", f"host must be an IP address, got {host!r}")
            )
    return problems
