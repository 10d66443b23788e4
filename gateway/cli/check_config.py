"""`mailwarden check-config`: the whole file checked at once, then every part asked.

Like `postfix check` / `rspamadm configtest`: each mistake on its own line with its
line number and key (and the name that was probably meant), then one line per
configured part (database, clamd, Redis, DNS, next hop) saying whether it answered.
Exit 0: all good; 1: the file is good but a part does not answer; 2: the file is wrong.
"""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli.common import add_config_argument, print_json
from gateway.config import ConfigError, ConfigProblem, Settings, check_settings_file


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check-config", help="check the configuration file and that every part answers"
    )
    add_config_argument(parser)
    parser.add_argument(
        "--no-connect", action="store_true", help="check the file only, ask no server"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def _runtime_problems(settings: Settings) -> list[ConfigProblem]:
    """What only shows when the parts are built: the model file, the rules directory."""
    from gateway.pipeline.chain import build_chain

    problems = []
    try:
        build_chain(settings)
    except ConfigError as exc:
        problems.append(ConfigProblem("", str(exc)))
    if settings.rules.dir is not None and not settings.rules.dir.is_dir():
        problems.append(ConfigProblem("rules.dir", f"not a directory: {settings.rules.dir}"))
    return problems


def run(args: argparse.Namespace) -> int:
    source = str(args.config)
    settings, problems = check_settings_file(args.config)
    if settings is not None:
        problems = _runtime_problems(settings)
    if problems or settings is None:
        if args.json:
            print_json({"config": source, "problems": [p.__dict__ for p in problems]})
        else:
            for problem in problems:
                print(problem.render(source))
            print(f"{source}: {len(problems)} problem(s)")
        return 2
    if args.no_connect:
        if args.json:
            print_json({"config": source, "problems": []})
        else:
            print(f"{source}: ok")
        return 0
    from gateway.app.probes import probe_all

    results = asyncio.run(probe_all(settings))
    if args.json:
        print_json({"config": source, "problems": [], "parts": [r.as_json() for r in results]})
    else:
        print(f"{source}: ok")
        width = max(len(r.part) for r in results)
        target_width = max(len(r.target) for r in results)
        print(f"{'PART':{width}}  {'TARGET':{target_width}}  {'STATE':6}  ANSWER")
        for r in results:
            state = "ok" if r.ok else "FAILED"
            print(f"{r.part:{width}}  {r.target:{target_width}}  {state:6}  {r.detail}")
    return 0 if all(r.ok for r in results) else 1
