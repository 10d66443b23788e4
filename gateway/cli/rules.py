"""`mailwarden rules check|test FILE`, and a domain's rules in the database:
`rules import D FILE`, `rules export D`, `rules history D`, `rules rollback D VERSION`.

`check` lists every problem of a domain policy file with its line. `test` runs a
message through the real pipeline (the server's code path: the configured filter
chain, then policy) with the file in force for its domain, and shows which rules
fired and what would happen to each recipient. `import` saves a file as the
domain's next version in the shared database (gateway/store/rules_store.py), and
every node applies it within seconds (at once with Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli import CliError
from gateway.cli.common import add_config_argument
from gateway.config import Settings, load_settings, settings_from_dict


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rules", help="check and try per-domain rule files")
    rsub = parser.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    check = rsub.add_parser("check", help="validate a rule file; every error with its line")
    check.add_argument("file", type=Path)
    add_config_argument(check, required=False)
    check.set_defaults(func=cmd_check)

    test = rsub.add_parser("test", help="which rules fire on a message, and the decision")
    test.add_argument("file", type=Path)
    test.add_argument("message", type=Path, help="the message (.eml, as received)")
    test.add_argument("--from", dest="mail_from", help="envelope sender (default: From:)")
    test.add_argument(
        "--rcpt",
        action="append",
        help="envelope recipient (repeatable; default: the "
        "To/Cc addresses in the file's domain, else user@DOMAIN)",
    )
    test.add_argument("--ip", default="127.0.0.1", help="client IP (default 127.0.0.1)")
    test.add_argument("--helo", default="localhost", help="HELO name")
    test.add_argument("--json", action="store_true", help="print JSON")
    add_config_argument(test, required=False)
    test.set_defaults(func=cmd_test)

    imp = rsub.add_parser("import", help="save a file as the domain's next rules version")
    imp.add_argument("domain")
    imp.add_argument("file", type=Path)
    imp.add_argument("--by", help="who makes the change (default: your user name)")
    imp.add_argument("--comment", default="", help="why (kept with the version)")
    add_config_argument(imp)
    imp.set_defaults(func=cmd_import)

    exp = rsub.add_parser("export", help="print the domain's rules (the version in force)")
    exp.add_argument("domain")
    exp.add_argument("--version", type=int, help="an earlier version")
    exp.add_argument("--out", type=Path, help="write to this file instead of stdout")
    add_config_argument(exp)
    exp.set_defaults(func=cmd_export)

    hist = rsub.add_parser("history", help="every version of the domain's rules")
    hist.add_argument("domain")
    hist.add_argument("--json", action="store_true", help="print JSON (with each text)")
    add_config_argument(hist)
    hist.set_defaults(func=cmd_history)

    back = rsub.add_parser("rollback", help="a new version with an earlier version's rules")
    back.add_argument("domain")
    back.add_argument("version", type=int)
    back.add_argument("--by", help="who makes the change (default: your user name)")
    back.add_argument("--comment", default="")
    add_config_argument(back)
    back.set_defaults(func=cmd_rollback)

    from filters.rules.lang import REPORT_KINDS, THRESHOLD_KEYS

    for name, keys, help_text, word in (
        ("thresholds", THRESHOLD_KEYS, "the domain's spam thresholds", "never"),
        ("report-addresses", REPORT_KINDS, "the domain's report addresses", "none"),
    ):
        verb = rsub.add_parser(name, help=f"show or set {help_text} (a new rules version)")
        verb.add_argument("domain")
        for key in keys:
            verb.add_argument(
                f"--{key}",
                metavar="VALUE",
                help=f"set it; {word!r} for none, 'default' for [config]",
            )
        verb.add_argument("--by", help="who makes the change (default: your user name)")
        verb.add_argument("--json", action="store_true")
        add_config_argument(verb)
        verb.set_defaults(func=cmd_domain_setting, keys=keys, word=word, setting=name)


def _settings(config: Path | None) -> Settings | None:
    return load_settings(config) if config else None


def _read_policy(path: Path, settings: Settings | None):
    from filters.rules.lang import RuleFileInvalid
    from gateway.pipeline.policy_files import known_symbols, read_policy_file

    if not path.is_file():
        raise CliError(f"{path}: file not found")
    accepted = settings.domains.accept if settings else None
    try:
        return read_policy_file(path, accepted, known_symbols(), check_name=False), []
    except RuleFileInvalid as exc:
        return None, exc.errors


def _print_errors(path: Path, errors: list) -> None:
    for error in errors:
        print(f"{path}:{error.line}: {error.message}", file=sys.stderr)
    print(f"{path}: {len(errors)} error{'s' if len(errors) != 1 else ''}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    policy, errors = _read_policy(args.file, settings)
    if policy is None:
        _print_errors(args.file, errors)
        return 1
    print(
        f"{args.file}: OK, domain {policy.domain}, {len(policy.rules)} rule"
        f"{'s' if len(policy.rules) != 1 else ''}"
    )
    return 0


async def run_test(settings: Settings, policy_file: Any, raw: bytes, args) -> dict[str, Any]:
    """The message through the server's pipeline, this file in force for its domain
    (gateway/pipeline/dry_run.py, as the console's dry run)."""
    from gateway.pipeline.assemble import build_ports
    from gateway.pipeline.dry_run import envelope_for, judge
    from gateway.store.db import Database

    envelope = envelope_for(
        policy_file.domain,
        raw,
        args.mail_from,
        [r.strip("<>") for r in args.rcpt] if args.rcpt else None,
        args.ip,
        args.helo,
    )
    db = Database(settings.store.url) if "store" in settings.model_fields_set else None
    ports = build_ports(settings, db)
    try:
        report = await judge(settings, ports, policy_file, envelope, raw)
    finally:
        if ports.redis is not None:
            await ports.redis.aclose()
        if db is not None:
            db.close()
    return {"file": str(args.file), **report}


def cmd_test(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    policy, errors = _read_policy(args.file, settings)
    if policy is None:
        _print_errors(args.file, errors)
        return 1
    if settings is None:
        settings = settings_from_dict({"domains": {"accept": [policy.domain]}})
    try:
        raw = args.message.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.message}: cannot read the message: {exc.strerror}") from None
    report = asyncio.run(run_test(settings, policy, raw, args))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"domain:  {report['domain']}")
    print(f"fired:   {', '.join(report['fired']) or '(no rule)'}")
    for decision in report["decisions"]:
        line = f"{decision['rcpt']}: {decision['action']} (score {decision['score']:.2f})"
        if decision.get("reply"):
            line += f" reply {decision['reply']!r}"
        print(line)
        for symbol in decision["symbols"]:
            if symbol["score"] or symbol["name"].startswith("RULE_"):
                opts = f" [{', '.join(symbol['options'])}]" if symbol["options"] else ""
                print(f"    {symbol['name']:<28} {symbol['score']:>7.2f}{opts}")
        for reason in decision["reasons"]:
            print(f"    reason: {reason}")
    return 0


# --- the database's rules ---------------------------------------------------------


def _store(args: argparse.Namespace):
    from gateway.pipeline.rules_db import checker
    from gateway.store.db import create_schema, make_engine
    from gateway.store.rules_store import normalise_domain

    settings = load_settings(args.config)
    try:
        args.domain = normalise_domain(args.domain)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not settings.accepts(args.domain):
        raise CliError(f"{args.domain} is not one of the domains this gateway accepts")
    engine = make_engine(settings.store.url)
    create_schema(engine)
    return settings, engine, checker(settings)


def _notify(settings: Settings) -> None:
    from gateway.pipeline.rules_db import notify_sync

    notify_sync(settings.redis.url, settings.redis.prefix)


def _stored(fn, path: Path | None = None):
    """Run a rules action; its refusals as operator errors naming the file and line."""
    from gateway.actions.common import ActionError
    from gateway.actions.rules import RulesRejected

    try:
        return fn()
    except RulesRejected as exc:
        where = str(path) if path else "the stored text"
        for error in exc.errors:
            print(f"{where}:{error['line']}: {error['message']}", file=sys.stderr)
        count = len(exc.errors)
        raise CliError(
            f"{where}: {count} error{'s' if count != 1 else ''}; nothing saved"
        ) from None
    except ActionError as exc:
        raise CliError(str(exc)) from None


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CliError(f"{path}:{line}: the file is not UTF-8 text") from None


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.actions import rules as rules_actions
    from gateway.actions.common import Actor
    from gateway.cli.common import acting_user

    text = _read_text(args.file)
    settings, engine, check = _store(args)
    try:
        saved = _stored(
            lambda: rules_actions.save(
                engine,
                Actor.cli(acting_user(args.by)),
                check,
                args.domain,
                text,
                comment=args.comment or f"imported from {args.file.name}",
                changed=lambda: _notify(settings),
            ),
            args.file,
        )
    finally:
        engine.dispose()
    print(f"{args.domain}: version {saved['version']} saved (by {saved['created_by']})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.store import rules_store

    _, engine, _ = _store(args)
    try:
        if args.version is None:
            found = rules_store.current(engine, args.domain)
        else:
            found = rules_store.get(engine, args.domain, args.version)
    finally:
        engine.dispose()
    if found is None:
        which = "no rules" if args.version is None else f"no rules version {args.version}"
        raise CliError(f"{args.domain} has {which} in the database")
    if args.out:
        args.out.write_text(found.text, encoding="utf-8")
        print(f"{args.out}: {args.domain} version {found.version}", file=sys.stderr)
    else:
        sys.stdout.write(found.text if found.text.endswith("\n") else found.text + "\n")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from gateway.cli.common import print_json
    from gateway.store import rules_store

    _, engine, check = _store(args)
    try:
        versions = rules_store.history(engine, args.domain)
    finally:
        engine.dispose()
    read_only = check.read_only(args.domain)
    if args.json:
        print_json(
            {
                "domain": args.domain,
                "read_only": read_only,
                "versions": [v.as_json() for v in versions],
            }
        )
        return 0
    if read_only:
        print(f"read-only: {read_only}")
    if not versions:
        print(f"{args.domain}: no rules in the database")
        return 0
    print(f"{'VERSION':>7}  {'WHEN':<25}  {'BY':<16}  COMMENT")
    for v in versions:
        when = v.created_at.isoformat(timespec="seconds")
        mark = " (in force)" if v is versions[0] else ""
        print(f"{v.version:>7}  {when:<25}  {v.created_by[:16]:<16}  {v.comment}{mark}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from gateway.actions import rules as rules_actions
    from gateway.actions.common import Actor
    from gateway.cli.common import acting_user

    settings, engine, check = _store(args)
    try:
        saved = _stored(
            lambda: rules_actions.rollback(
                engine,
                Actor.cli(acting_user(args.by)),
                check,
                args.domain,
                args.version,
                comment=args.comment,
                changed=lambda: _notify(settings),
            )
        )
    finally:
        engine.dispose()
    print(
        f"{args.domain}: version {saved['version']} saved, a copy of version {args.version} "
        f"(by {saved['created_by']})"
    )
    return 0


def cmd_domain_setting(args: argparse.Namespace) -> int:
    """`rules thresholds D [--tag X ...]` and `rules report-addresses D [--spam L ...]`:
    the console's actions (gateway/actions/thresholds.py, report_addresses.py); options
    not given keep what the domain sets now."""
    from gateway.actions import report_addresses, thresholds
    from gateway.actions.common import Actor
    from gateway.cli.common import acting_user, print_json

    action = thresholds if args.setting == "thresholds" else report_addresses
    settings, engine, check = _store(args)
    actor = Actor.cli(acting_user(args.by))
    given = {k: getattr(args, k) for k in args.keys if getattr(args, k) is not None}
    try:
        found = _stored(lambda: action.show(engine, actor, check, args.domain))
        if given:
            values: dict[str, Any] = dict(found["set"])
            for key, text in given.items():
                if text.lower() == "default":
                    values.pop(key, None)
                else:
                    values[key] = _stored(lambda key=key, text=text: action.typed(key, text))
            found = _stored(
                lambda: action.put(
                    engine,
                    actor,
                    check,
                    args.domain,
                    values,
                    changed=lambda: _notify(settings),
                )
            )
    finally:
        engine.dispose()
    if args.json:
        print_json(found)
        return 0
    if found["read_only"]:
        print(f"read-only: {found['read_only']}")
    for key in args.keys:
        value = found["effective"][key]
        by = args.domain if key in found["set"] else "default"
        shown = args.word if value is None else value
        print(f"{key:<11} {shown}  ({by})")
    if given:
        print(f"{args.domain}: saved as rules version {found['version']}")
    return 0
