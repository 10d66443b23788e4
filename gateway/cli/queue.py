"""`mailwarden queue`: what waits in the spool, and control over it (as postqueue/postsuper).

    queue [list]          every job: id, state, age, size, attempts, recipients, last error
    queue show ID         one job in full (envelope, headers, per-recipient state)
    queue flush [ID]      retry now (postqueue -f / -i)
    queue hold ID         keep it from delivery until released (postsuper -h)
    queue release ID      back to delivery, tried at once (postsuper -H)
    queue delete ID       remove it, recorded in the ledger with who did it (postsuper -d)

Control goes through the running gateway (gateway.store.queue_control): the command
waits up to --wait seconds for its answer.
"""

from __future__ import annotations

import argparse
import time
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

from gateway.cli import CliError
from gateway.cli.common import acting_user, add_config_argument, print_json
from gateway.cli.safe_text import echo
from gateway.config import load_settings
from gateway.store import queue_control as control
from gateway.store import queue_view
from gateway.store.spool import Job, Spool
from gateway.store.spool_layout import all_spool_dirs

SHOWN_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("queue", help="list and control messages waiting for delivery")
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_list)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    lst = verbs.add_parser("list", help="every job waiting (the default)")
    add_config_argument(lst, nested=True)
    lst.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    lst.set_defaults(func=run_list)
    show = verbs.add_parser("show", help="one job in full")
    show.add_argument("id", metavar="ID")
    add_config_argument(show, nested=True)
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    show.set_defaults(func=run_show)
    for op, help_text in (
        ("flush", "retry now (every job, or ID)"),
        ("hold", "keep a job from delivery until released"),
        ("release", "release a held job (tried at once)"),
        ("delete", "remove a job; recorded in the ledger"),
    ):
        verb = verbs.add_parser(op, help=help_text)
        verb.add_argument("id", metavar="ID", nargs="?" if op == "flush" else None)
        add_config_argument(verb, nested=True)
        verb.add_argument("--by", default=None, help="who does it (default: your user name)")
        verb.add_argument(
            "--wait", type=float, default=15.0, metavar="S", help="seconds to wait for the gateway"
        )
        verb.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        verb.set_defaults(func=run_control, op=op)


def _spools(args: argparse.Namespace) -> list[Spool]:
    settings = load_settings(args.config)
    spools = [Spool(d) for d in all_spool_dirs(settings.spool.path)]
    if not spools:
        raise CliError(f"{settings.spool.path}: no spool here (has the gateway run yet?)")
    return spools


def _age(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def run_list(args: argparse.Namespace) -> int:
    now = time.time()
    rows = [queue_view.row(s, job, now) for s in _spools(args) for job in s.list_jobs()]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("queue is empty")
        return 0
    echo(f"{'ID':28} {'STATE':8} {'AGE':>7} {'SIZE':>8} {'TRIES':>5}  FROM -> PENDING")
    for r in rows:
        echo(
            f"{r['id']:28} {r['state']:8} {_age(r['age_seconds']):>7} {r['size']:>8} "
            f"{r['attempts']:>5}  <{r['from']}> -> {', '.join(r['pending'])}"
        )
        if r["last_error"]:
            echo(f"{'':28} last error: {r['last_error']}")
    echo(f"{len(rows)} job(s)")
    return 0


def _find(spools: list[Spool], wanted: str) -> list[tuple[Spool, Job]]:
    return [(s, job) for s in spools for job in s.list_jobs() if wanted in (job.id, job.queue_id)]


def _headers(spool: Spool, job: Job) -> dict[str, str]:
    try:
        data = spool.read(job.id)
    except (OSError, ValueError):
        return {}
    message = BytesHeaderParser(policy=default_policy).parsebytes(data)
    return {name: str(message[name]) for name in SHOWN_HEADERS if message[name] is not None}


def run_show(args: argparse.Namespace) -> int:
    found = _find(_spools(args), args.id)
    if not found:
        raise CliError(f"{args.id}: no such job in the queue")
    now = time.time()
    shown = []
    for spool, job in found:
        row = queue_view.row(spool, job, now)
        row["headers"] = _headers(spool, job)
        row["recipients"] = [vars(r) for r in job.rcpts]
        row["next_attempt"] = queue_view.iso(job.next_attempt) if job.next_attempt else None
        shown.append(row)
    if args.json:
        print_json(shown[0] if len(shown) == 1 else shown)
        return 0
    for row in shown:
        for key in ("id", "queue_id", "state", "kind", "received_at", "size", "from"):
            echo(f"{key + ':':13} {row[key]}")
        if row["held"]:
            echo(f"{'held:':13} by {row['held']['by']} at {row['held']['at']}")
        echo(f"{'attempts:':13} {row['attempts']}, next {row['next_attempt'] or 'now'}")
        for name, value in row["headers"].items():
            echo(f"{name + ':':13} {value}")
        echo(f"{'RECIPIENT':40} {'STATUS':10} LAST ERROR")
        for r in row["recipients"]:
            echo(f"{r['rcpt']:40} {r['status']:10} {r['last_error'] or ''}")
    return 0


def run_control(args: argparse.Namespace) -> int:
    spools = _spools(args)
    by = acting_user(args.by)
    if args.id is None:  # flush everything, in every spool directory
        targets = [s.root for s in spools]
    else:
        targets = sorted({s.root for s, _ in _find(spools, args.id)}, key=str)
        if not targets:
            raise CliError(f"{args.id}: no such job in the queue")
    answers = []
    for root in targets:
        request = control.submit(Path(root), args.op, args.id, by)
        answers.append(control.wait_answer(Path(root), request, args.wait))
    if any(a is None for a in answers):
        message = (
            f"{args.op} {args.id or 'all'}: requested; no running gateway answered within "
            f"{args.wait:.0f} s, it applies when the gateway starts"
        )
        if args.json:
            print_json({"ok": None, "message": message})
        else:
            print(message)
        return 1
    done = [a for a in answers if a is not None]
    failed = [a for a in done if not a["ok"]]
    if args.json:
        print_json(done[0] if len(done) == 1 else done)
    else:
        for a in done:
            print(a["message"])
    return 1 if failed else 0
