"""`mailwarden policy set|show|clear`: per-mailbox antivirus policy, per-domain defaults.

    mailwarden policy set bob@example.com --antivirus on --mode detect --config FILE
    mailwarden policy set @example.com --mode clean --keep-original no --config FILE
    mailwarden policy show [bob@example.com | @example.com] --config FILE
    mailwarden policy clear bob@example.com --config FILE

Fields not given to `set` keep their value; a field never set is inherited
(mailbox <- domain <- global default). `show TARGET` prints the effective
policy and where each field comes from.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gateway.actions import policy as policy_actions
from gateway.actions.common import Actor
from gateway.address import domain_of
from gateway.cli import CliError
from gateway.cli.common import acting_user, add_config_argument, print_json
from gateway.config import Settings, load_settings
from gateway.store import av_policy, av_policy_live
from gateway.store.db import create_schema, make_engine

_ON_OFF = {"on": True, "off": False, "yes": True, "no": False}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("policy", help="per-mailbox antivirus policy")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    put = verbs.add_parser("set", help="set a mailbox's or a domain's antivirus policy")
    put.add_argument("target", metavar="RCPT|@DOMAIN")
    put.add_argument("--antivirus", choices=("on", "off"), help="scan this mailbox's mail")
    put.add_argument("--mode", choices=av_policy.MODES, help="clean: remove viruses; detect: flag")
    put.add_argument(
        "--keep-original", choices=("yes", "no"), help="keep infected originals in quarantine"
    )
    put.add_argument("--by", metavar="WHO", help="who changes it (audit log; default: login)")
    show = verbs.add_parser("show", help="effective policy of a target, or every stored row")
    show.add_argument("target", nargs="?", metavar="RCPT|@DOMAIN")
    show.add_argument("--json", action="store_true")
    clear = verbs.add_parser("clear", help="remove a target's row (inherit everything again)")
    clear.add_argument("target", metavar="RCPT|@DOMAIN")
    clear.add_argument("--by", metavar="WHO", help="who changes it (audit log; default: login)")
    for verb in (put, show, clear):
        add_config_argument(verb)
    parser.set_defaults(func=run)


def _target(settings: Settings, text: str) -> str:
    try:
        target = av_policy.normalise_target(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    domain = domain_of(target)
    if settings.domains.accept and not settings.accepts(domain):
        raise CliError(f"{text}: {domain} is not an accepted domain (domains.accept)")
    return target


def _notify(settings: Settings) -> Callable[[], None]:
    """The running gateways reload their copy on this notice (or at their next poll)."""
    return lambda: av_policy_live.notify_sync(settings.redis.url, settings.redis.prefix)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    engine = make_engine(settings.store.url)
    try:
        create_schema(engine)
        if args.verb == "set":
            return _set(engine, settings, args)
        if args.verb == "clear":
            actor = Actor.cli(acting_user(args.by))
            removed = policy_actions.clear(
                engine, actor, _target(settings, args.target), changed=_notify(settings)
            )
            print("removed" if removed else "nothing to remove: it inherits already")
            return 0
        return _show(engine, settings, args)
    finally:
        engine.dispose()


def _set(engine, settings: Settings, args: argparse.Namespace) -> int:
    if args.antivirus is None and args.mode is None and args.keep_original is None:
        raise CliError("policy set: give at least one of --antivirus, --mode, --keep-original")
    target = _target(settings, args.target)
    policy_actions.put(
        engine,
        Actor.cli(acting_user(args.by)),
        target,
        enabled=None if args.antivirus is None else _ON_OFF[args.antivirus],
        mode=args.mode,
        keep_original=None if args.keep_original is None else _ON_OFF[args.keep_original],
        changed=_notify(settings),
    )
    _print_effective(engine, target)
    return 0


def _show(engine, settings: Settings, args: argparse.Namespace) -> int:
    if args.target:
        target = _target(settings, args.target)
        effective = _effective(engine, target)
        if args.json:
            print_json(
                {
                    "target": target,
                    "antivirus": effective.policy.enabled,
                    "mode": effective.policy.mode,
                    "keep_original": effective.policy.keep_original,
                    "from": dict(effective.sources),
                }
            )
        else:
            _print_effective(engine, target)
        return 0
    rows = av_policy.list_rows(engine)
    if args.json:
        print_json(rows)
        return 0
    default = av_policy.resolve({}, "@default.invalid").policy
    print(f"default: {_describe(default.enabled, default.mode, default.keep_original)}")
    for row in rows:
        print(f"{row['target']}: {_describe(row['enabled'], row['mode'], row['keep_original'])}")
    return 0


def _effective(engine, target: str) -> av_policy.Effective:
    rows = av_policy.fetch_rows(engine, [target, av_policy.domain_target(target)])
    return av_policy.resolve(rows, target)


def _print_effective(engine, target: str) -> None:
    eff = _effective(engine, target)
    p, src = eff.policy, eff.sources
    print(f"{target}:")
    print(f"  antivirus      {'on' if p.enabled else 'off':8} (from {src['enabled']})")
    print(f"  mode           {p.mode:8} (from {src['mode']})")
    print(f"  keep original  {'yes' if p.keep_original else 'no':8} (from {src['keep_original']})")


def _describe(enabled: bool | None, mode: str | None, keep: bool | None) -> str:
    def show(value, yes: str, no: str) -> str:
        return "inherit" if value is None else (yes if value else no)

    return (
        f"antivirus={show(enabled, 'on', 'off')} mode={mode or 'inherit'} "
        f"keep-original={show(keep, 'yes', 'no')}"
    )
