"""The report as plain text, for a terminal or a mail to the customer."""

from __future__ import annotations

from typing import Any

from gateway.report.profiles import METRICS, RATES

LABELS = {
    "virus_detection_rate": "virus detection",
    "virus_clean_rate": "virus cleaning",
    "spam_filter_rate": "spam filtering",
    "false_positive_rate": "false positives",
    "delay_avg_s": "average delay",
    "delay_p99_s": "99th percentile delay",
    "delay_max_s": "longest delay",
    "delay_over_1h": "mails over one hour",
    "availability": "availability",
    "signature_age_days": "signature age",
}


def fmt_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in RATES or metric == "availability":
        return f"{value * 100:.4g}%"
    if metric == "delay_over_1h":
        return f"{value:g}"
    if metric == "signature_age_days":
        return f"{value:.1f} days"
    return f"{value:.1f} s"


def fmt_guarantee(metric: str, guarantee: float | None) -> str:
    if guarantee is None:
        return "no promise"
    sign = ">=" if METRICS[metric] == "at_least" else "<="
    return f"{sign} {fmt_value(metric, guarantee)}"


def fmt_interval(metric: str, ci: list[float] | None) -> str:
    if not ci:
        return ""
    return f"[{fmt_value(metric, ci[0])} - {fmt_value(metric, ci[1])}]"


def fmt_count(m: dict[str, Any]) -> str:
    if m["denominator"] is None:
        return ""
    if m["numerator"] is None:
        return f"n={m['denominator']}"
    return f"{m['numerator']:g}/{m['denominator']}"


def render_scope(scope: dict[str, Any]) -> list[str]:
    title = scope["domain"] or "all domains"
    profile = scope["profile"]
    lines = [f"== {title} (profile {profile['name']}) =="]
    for metric in METRICS:
        m = scope[metric]
        lines.append(
            f"  {LABELS[metric]:<22} {fmt_value(metric, m['value']):>10} "
            f"{fmt_interval(metric, m['ci95']):<24} {fmt_count(m):>14}  "
            f"{fmt_guarantee(metric, m['guarantee']):<14} {m['status'] or ''}"
        )
    c = scope["counts"]
    lines.append(
        f"  mail: {c.get('recipients', 0)} received (per recipient), {c.get('spam', 0)} spam, "
        f"{c.get('virus', 0)} virus, {c.get('legitimate', 0)} legitimate; "
        f"{c.get('bounced', 0)} bounced, {c.get('still_queued', 0)} still queued, "
        f"{c.get('deferred_then_delivered', 0)} delivered after a deferral"
    )
    if c.get("virus_detect_only"):
        lines.append(
            f"  {c['virus_detect_only']} virus mail(s) to {c['detect_only_mailboxes']} "
            "detect-only mailbox(es) were delivered flagged, not cleaned"
        )
    if c.get("virus_not_scanned"):
        lines.append(f"  {c['virus_not_scanned']} virus mail(s) to mailboxes with antivirus off")
    fb = scope["feedback"]
    lines.append(
        f"  feedback counted: {fb['spam']} spam, {fb['ham']} legitimate, {fb['virus']} virus"
        + (
            f"; {c['unmatched_reports']} report(s) matched no mail"
            if c.get("unmatched_reports")
            else ""
        )
    )
    return lines


def render_text(report: dict[str, Any]) -> str:
    a = report["availability"]
    s = report["signatures"]
    lines = [
        f"mailwarden service report for {report['month']} "
        f"(generated {report['generated_at'][:19]} UTC)",
        f"intervals: 95% two-sided {report['interval']['method']}; "
        + report["interval"]["status_rule"],
        f"availability measured from {a['measured_from'][:16]} to {a['measured_until'][:16]}: "
        f"{a['downtime_minutes']} minute(s) down; next hop unreachable "
        f"{a['next_hop_unreachable_minutes']} minute(s) ({a['next_hop_note']})",
        "signatures: "
        + (
            f"oldest in use {s['oldest_version']} ({s['oldest_age_days']} days)"
            if s["oldest_version"]
            else "no dated signature database on record"
        )
        + (
            f", longest gap between updates {s['longest_gap_days']} days"
            if s["longest_gap_days"]
            else ""
        ),
        "",
    ]
    scopes = list(report["domains"].values())
    if "overall" in report:
        scopes.insert(0, report["overall"])
    for scope in scopes:
        lines.extend(render_scope(scope))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
