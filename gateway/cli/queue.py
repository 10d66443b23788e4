"""`mailwarden queue`: what waits in the spool, with age and last error."""

from __future__ import annotations

import argparse
import time

from gateway.app.workers import all_spool_dirs
from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json
from gateway.config import load_settings
from gateway.store.spool import Spool


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("queue", help="list messages waiting for delivery")
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    spools = [Spool(d) for d in all_spool_dirs(settings.spool.path)]
    if not spools:
        raise CliError(f"{settings.spool.path}: no spool here (has the gateway run yet?)")
    now = time.time()
    rows = []
    for spool, job in ((s, job) for s in spools for job in s.list_jobs()):
        rows.append(
            {
                "id": job.id,
                "kind": job.kind,
                "age_seconds": round(now - job.received_at, 1),
                "size": spool.size_of(job.id),
                "from": job.mail_from,
                "pending": [r.rcpt for r in job.pending],
                "attempts": job.attempts,
                "next_attempt_in": round(max(0.0, job.next_attempt - now), 1),
                "last_error": job.last_error,
            }
        )
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("queue is empty")
        return 0
    print(f"{'ID':28} {'AGE':>7} {'SIZE':>8} {'TRIES':>5}  FROM -> PENDING")
    for r in rows:
        print(
            f"{r['id']:28} {_age(r['age_seconds']):>7} {r['size']:>8} {r['attempts']:>5}  "
            f"<{r['from']}> -> {', '.join(r['pending'])}"
        )
        if r["last_error"]:
            print(f"{'':28} last error: {r['last_error']}")
    print(f"{len(rows)} job(s)")
    return 0
