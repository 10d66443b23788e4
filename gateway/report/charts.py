"""Inline SVG charts for the html report: no script, no remote load, prints in black and grey.

Each function takes plain numbers and returns an SVG string (text escaped here),
so the page stays one self-contained file.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 36
# print-friendly: dark to light, each also told apart by the legend order
PALETTE = ("#1f4e79", "#6d9ec8", "#c9a227", "#b03a2e", "#5b2c6f", "#7f8c8d")


def _frame(title: str, body: list[str], legend: Sequence[tuple[str, str]] = ()) -> str:
    items = []
    x = LEFT
    for label, colour in legend:
        items.append(
            f'<rect x="{x}" y="{HEIGHT - 12}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 3}" class="legend">{escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart">'
        f"<title>{escape(title)}</title>" + "".join(body) + "".join(items) + "</svg>"
    )


def _axes(y_max: float, y_label, ticks: int = 4) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    out = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'class="axis"/>',
    ]
    for i in range(ticks + 1):
        value = y_max * i / ticks
        y = TOP + plot_h - plot_h * i / ticks
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>'
        )
        out.append(
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" class="tick" text-anchor="end">'
            f"{escape(y_label(value))}</text>"
        )
    return out


def _x_labels(labels: Sequence[str], every: int) -> list[str]:
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(1, len(labels))
    return [
        f'<text x="{LEFT + step * (i + 0.5):.1f}" y="{HEIGHT - BOTTOM + 12}" class="tick" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return value


def stacked_bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    label_every: int = 1,
) -> str:
    """Bars per label, one stacked segment per series (e.g. daily volume by verdict)."""
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    y_max = _nice_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels))
    body = _axes(y_max, lambda v: f"{v:,.0f}")
    for i in range(len(labels)):
        y: float = TOP + plot_h
        for index, (name, values) in enumerate(series):
            h = plot_h * values[i] / y_max
            if h <= 0:
                continue
            y -= h
            body.append(
                f'<rect x="{LEFT + step * i + step * 0.12:.1f}" y="{y:.1f}" '
                f'width="{step * 0.76:.1f}" height="{h:.1f}" fill="{PALETTE[index % 6]}">'
                f"<title>{escape(labels[i])} {escape(name)}: {values[i]:,.0f}</title></rect>"
            )
    body += _x_labels(labels, label_every)
    legend = [(name, PALETTE[i % 6]) for i, (name, _) in enumerate(series)]
    return _frame(title, body, legend)


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    guarantees: Sequence[tuple[str, float]],
    y_min: float,
    y_max: float,
    y_label,
    label_every: int = 1,
) -> str:
    """Lines per series over the labels (gaps where a value is None), with dashed
    horizontal lines at the guarantees (e.g. daily rates against the promise)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels))
    span = (y_max - y_min) or 1.0

    def y_of(value: float) -> float:
        clipped = min(max(value, y_min), y_max)
        return TOP + plot_h - plot_h * (clipped - y_min) / span

    body = [
        *_axes(span, lambda v: y_label(y_min + v)),
    ]
    for index, (name, value) in enumerate(guarantees):
        y = y_of(value)
        body.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="{PALETTE[index % 6]}" stroke-dasharray="6 4" class="guarantee"/>'
            f'<text x="{WIDTH - RIGHT - 2}" y="{y - 3:.1f}" class="tick" text-anchor="end">'
            f"{escape(name)}</text>"
        )
    for index, (_, values) in enumerate(series):
        runs: list[list[str]] = [[]]
        for i, point in enumerate(values):
            if point is None:
                runs.append([])
                continue
            runs[-1].append(f"{LEFT + step * (i + 0.5):.1f},{y_of(point):.1f}")
        colour = PALETTE[index % 6]
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif run:
                body.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    'stroke-width="2"/>'
                )
    body += _x_labels(labels, label_every)
    legend = [(name, PALETTE[i % 6]) for i, (name, _) in enumerate(series)]
    return _frame(title, body, legend)
