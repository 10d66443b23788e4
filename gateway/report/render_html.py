"""The report as one self-contained, print-friendly html page with inline SVG charts.

Nothing is loaded from anywhere: styles inline, charts as SVG, no script. Each
scope (all domains, then each domain) is a section that starts a new printed page.
"""

from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from gateway.report import charts
from gateway.report.profiles import METRICS
from gateway.report.render_text import LABELS, fmt_count, fmt_guarantee, fmt_interval, fmt_value

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Service report {{ report.month }}{% if title %} for {{ title }}{% endif %}</title>
<style>
body { font: 14px/1.45 "DejaVu Sans", Arial, sans-serif; color: #1b1b1b; margin: 24px auto;
       max-width: 860px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 6px; border-bottom: 2px solid #1f4e79; padding-bottom: 3px; }
h3 { font-size: 15px; margin: 18px 0 4px; }
.meta, .note { color: #555; font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f1f4f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: bold; padding: 1px 6px; border-radius: 3px; white-space: nowrap; }
.met { color: #185c2b; background: #e3f1e6; } .missed { color: #8a1c12; background: #f8e1de; }
.nodata { color: #6b5200; background: #fbf1cf; } .none { color: #666; }
svg.chart { width: 100%; height: auto; margin: 4px 0 10px; }
svg .axis { stroke: #333; } svg .grid { stroke: #e4e4e4; }
svg .tick, svg .legend { font-size: 10px; fill: #333; }
section.scope { margin-top: 18px; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  section.scope { break-before: page; }
  section.scope:first-of-type { break-before: auto; }
  .status { border: 1px solid currentColor; }
  svg.chart, table { break-inside: avoid; }
}
</style></head><body>
<header>
<h1>Service report, {{ month_name }}{% if title %}: {{ title }}{% endif %}</h1>
<p class="meta">Computed by mailwarden from its own ledger on {{ report.generated_at[:16] }} UTC.
Intervals: 95% two-sided {{ report.interval.method }}. {{ report.interval.status_rule|capitalize }}.
Feedback received after the month counts in the month the mail was received.</p>
</header>
{% for scope in scopes %}
<section class="scope">
<h2>{{ scope.domain or "All domains" }}</h2>
<p class="meta">Guarantees: profile <b>{{ scope.profile.name }}</b>
{%- if scope.profile.description %} ({{ scope.profile.description }}){% endif %}.
{{ "{:,}".format(scope.counts.recipients) }} mails received (counted per recipient):
{{ "{:,}".format(scope.counts.spam) }} spam, {{ "{:,}".format(scope.counts.virus) }} virus,
{{ "{:,}".format(scope.counts.legitimate) }} legitimate.</p>
<table>
<thead><tr><th>promise</th><th>measured</th><th>95% interval</th><th>count</th>
<th>guarantee</th><th>status</th></tr></thead>
<tbody>
{% for row in scope.rows %}
<tr><td>{{ row.label }}</td><td class="num">{{ row.value }}</td>
<td class="num">{{ row.interval }}</td><td class="num">{{ row.count }}</td>
<td>{{ row.guarantee }}</td>
<td><span class="status {{ row.css }}">{{ row.status }}</span></td></tr>
{% endfor %}
</tbody></table>
<ul class="note">
{% for note in scope.notes %}<li>{{ note }}</li>{% endfor %}
</ul>
<h3>Daily volume by verdict</h3>
{{ scope.charts.volume }}
<h3>Daily rates against the guarantees</h3>
{{ scope.charts.rates }}
{{ scope.charts.fp }}
<h3>Delivery delay distribution</h3>
{{ scope.charts.delays }}
<h3>Downtime minutes per day</h3>
{{ scope.charts.downtime }}
{% if scope.bounced %}
<h3>Bounced mail (not in the delays)</h3>
<table><thead><tr><th>received</th><th>queue id</th><th>recipient</th><th>error</th></tr></thead>
<tbody>{% for b in scope.bounced %}<tr><td>{{ b.received_at[:16] }}</td><td>{{ b.queue_id }}</td>
<td>{{ b.rcpt }}</td><td>{{ b.error or "" }}</td></tr>{% endfor %}</tbody></table>
{% endif %}
</section>
{% endfor %}
</body></html>
"""

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_PAGE = _ENV.from_string(TEMPLATE)
CSS = {"met": "met", "missed": "missed", "not enough data": "nodata", None: "none"}


def render_html(report: dict[str, Any]) -> str:
    scopes = list(report["domains"].values())
    if "overall" in report:
        scopes.insert(0, report["overall"])
    only = None if "overall" in report else ", ".join(report["domains"])
    from datetime import datetime

    month_name = datetime.strptime(report["month"], "%Y-%m").strftime("%B %Y")
    return _PAGE.render(
        report=report,
        title=only,
        month_name=month_name,
        scopes=[_scope_view(scope, report) for scope in scopes],
    )


def _scope_view(scope: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for metric in METRICS:
        m = scope[metric]
        rows.append(
            {
                "label": LABELS[metric],
                "value": fmt_value(metric, m["value"]),
                "interval": fmt_interval(metric, m["ci95"]),
                "count": fmt_count(m),
                "guarantee": fmt_guarantee(metric, m["guarantee"]),
                "status": m["status"] or "no promise",
                "css": CSS.get(m["status"], "none"),
            }
        )
    return {
        **scope,
        "rows": rows,
        "notes": _notes(scope, report),
        "charts": _charts(scope),
    }


def _notes(scope: dict[str, Any], report: dict[str, Any]) -> list[str]:
    c, a, s = scope["counts"], report["availability"], report["signatures"]
    notes = [
        f"Availability measured from {a['measured_from'][:16]} to {a['measured_until'][:16]} UTC: "
        f"{a['downtime_minutes']} minute(s) with no node accepting mail. The protected mail "
        f"server was unreachable for {a['next_hop_unreachable_minutes']} minute(s): its outage, "
        "not the gateway's; mail was accepted and queued meanwhile.",
        f"{c['bounced']} mail(s) bounced and {c['still_queued']} still queued (not in the "
        f"delays); {c['deferred_then_delivered']} delivered after a deferral (in the delays).",
    ]
    if s["oldest_version"]:
        gap = (
            f"; longest gap between updates {s['longest_gap_days']} days"
            if s["longest_gap_days"]
            else ""
        )
        notes.append(
            f"Oldest signature database in use: {s['oldest_version']}, "
            f"{s['oldest_age_days']} days old when last used{gap}."
        )
    else:
        notes.append("No dated antivirus signature database on record for this month.")
    if c["virus_detect_only"]:
        notes.append(
            f"{c['virus_detect_only']} virus mail(s) went to {c['detect_only_mailboxes']} "
            "mailbox(es) in detect-only mode: delivered flagged, counted as not cleaned."
        )
    if c["virus_not_scanned"]:
        notes.append(
            f"{c['virus_not_scanned']} virus mail(s) went to mailboxes with antivirus off "
            "(not in the virus rates)."
        )
    fb = scope["feedback"]
    notes.append(
        f"Feedback counted: {fb['spam']} spam, {fb['ham']} legitimate, {fb['virus']} virus"
        + (
            f"; {c['unmatched_reports']} report(s) matched no mail."
            if c["unmatched_reports"]
            else "."
        )
    )
    return notes


def _charts(scope: dict[str, Any]) -> dict[str, Markup]:
    daily = scope["daily"]
    days = [row["day"][8:] for row in daily]
    volume = [
        (kind, [row["volume"][kind] for row in daily])
        for kind in ("clean", "tagged", "quarantined", "rejected", "virus")
    ]
    rate_series = [
        ("spam filtering", [row["rates"]["spam_filter_rate"] for row in daily]),
        ("virus detection", [row["rates"]["virus_detection_rate"] for row in daily]),
    ]
    guarantees = [
        (
            f"spam >= {scope['spam_filter_rate']['guarantee'] * 100:g}%",
            scope["spam_filter_rate"]["guarantee"],
        )
        if scope["spam_filter_rate"]["guarantee"] is not None
        else None,
        (
            f"virus >= {scope['virus_detection_rate']['guarantee'] * 100:g}%",
            scope["virus_detection_rate"]["guarantee"],
        )
        if scope["virus_detection_rate"]["guarantee"] is not None
        else None,
    ]
    present = [v for _, values in rate_series for v in values if v is not None]
    low = min([*present, *(g[1] for g in guarantees if g)], default=0.9)
    y_min = max(0.0, math.floor(low * 20) / 20)
    fp_values = [row["rates"]["false_positive_rate"] for row in daily]
    fp_guarantee = scope["false_positive_rate"]["guarantee"]
    fp_top = max([v for v in fp_values if v is not None] + [(fp_guarantee or 0) * 2, 1e-4])
    hist = scope["delay_histogram"]
    hist_labels = [f"<= {b['le']:g} s" if b["le"] is not None else "> 3600 s" for b in hist]
    every = 2 if len(days) > 16 else 1
    return {
        "volume": Markup(charts.stacked_bars("Daily volume by verdict", days, volume, every)),
        "rates": Markup(
            charts.lines(
                "Daily spam filtering and virus detection rates",
                days,
                rate_series,
                [g for g in guarantees if g],
                y_min,
                1.0,
                lambda v: f"{v * 100:.0f}%",
                every,
            )
        ),
        "fp": Markup(
            charts.lines(
                "Daily false-positive rate",
                days,
                [("false positives", fp_values)],
                [(f"<= {fp_guarantee * 100:g}%", fp_guarantee)] if fp_guarantee else [],
                0.0,
                fp_top,
                lambda v: f"{v * 100:.3g}%",
                every,
            )
        ),
        "delays": Markup(
            charts.stacked_bars(
                "Delivery delay distribution (per recipient)",
                hist_labels,
                [("delivered copies", [b["count"] for b in hist])],
            )
        ),
        "downtime": Markup(
            charts.stacked_bars(
                "Downtime minutes per day",
                days,
                [("minutes down", [row["downtime_minutes"] for row in daily])],
                every,
            )
        ),
    }
