"""Latency against offered load, from a ``seqnet bench`` result, as a standalone SVG picture.

The bench's table gives the numbers; the picture shows where latency bends: how
p50 and p99 (to decrypted, and verified at the rollup) climb as the offered load
nears the saturation throughput, drawn as a vertical line. Hand-written SVG, so
that the bench needs no plotting library. The small SVG helpers (``svg_text``,
``svg_line``, ``svg_document``, ``log_ticks``, ``nice_step``) are shared with the
chaos report's timeline (``ops/chaos/report.py``).
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 860, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 620, 50, 400  # the plot area; the legend is right of it
DEFAULT_MS = (10.0, 1000.0)  # the y range when nothing was measured
MAX_X_TICKS = 8


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # the latency's key in each rate row
    label: str
    colour: str
    dashed: bool


SERIES = (
    Series("p50_ms", "p50 to decrypted", "#1f77b4", False),
    Series("p99_ms", "p99 to decrypted", "#1f77b4", True),
    Series("rollup_p50_ms", "p50 verified at the rollup", "#d62728", False),
    Series("rollup_p99_ms", "p99 verified at the rollup", "#d62728", True),
)
DASH = "6,4"


@dataclass(frozen=True, slots=True)
class Frame:
    """The axes' ranges: x linear from 0, y logarithmic, both mapped onto the plot area."""

    x_max: float
    x_step: float
    y_lo: float
    y_hi: float

    def x(self, tps: float) -> float:
        return LEFT + (RIGHT - LEFT) * tps / self.x_max

    def y(self, ms: float) -> float:
        span = math.log10(self.y_hi) - math.log10(self.y_lo)
        return BOTTOM - (BOTTOM - TOP) * (math.log10(ms) - math.log10(self.y_lo)) / span


def _number_or_nan(value: object) -> float:
    """``value`` as a float if it is a finite number, else NaN (missing, None, NaN, inf)."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return math.nan


def _offered(row: dict[str, Any]) -> float:
    """The row's measured offered load, or the rate asked when that was not measured."""
    offered = _number_or_nan(row.get("offered"))
    return offered if not math.isnan(offered) else _number_or_nan(row.get("rate"))


def points(result: dict[str, Any], key: str) -> list[tuple[float, float]]:
    """(offered tx/s, latency ms) of one series, by load; rows without both are skipped."""
    out = []
    for row in result.get("rates", []):
        x, ms = _offered(row), _number_or_nan(row.get(key))
        if x >= 0 and ms > 0:  # False for NaN; a log scale has no place for 0 ms
            out.append((x, ms))
    return sorted(out)


def saturation_tps(result: dict[str, Any]) -> float | None:
    """Decrypted per second of the backlog, or None if it was not measured."""
    sat = result.get("saturation") or {}
    decrypted, seconds = _number_or_nan(sat.get("decrypted")), _number_or_nan(sat.get("seconds"))
    if not (decrypted >= 0 and seconds > 0):
        return None
    return decrypted / seconds


def _steps_around(value: float) -> list[float]:
    """The 1-2-5 values in the decades around ``value`` (> 0), ascending."""
    decade = math.floor(math.log10(value))
    return [m * 10.0**e for e in range(decade - 1, decade + 2) for m in (1, 2, 5)]


def _step_floor(value: float) -> float:
    return max(s for s in _steps_around(value) if s <= value * (1 + 1e-9))


def _step_ceil(value: float) -> float:
    return min(s for s in _steps_around(value) if s >= value * (1 - 1e-9))


def log_ticks(lo: float, hi: float) -> list[float]:
    """The 1-2-5 values (10, 20, 50, 100, ...) from ``lo`` to ``hi``."""
    low, high = math.floor(math.log10(lo)), math.floor(math.log10(hi))
    candidates = [m * 10.0**e for e in range(low, high + 1) for m in (1, 2, 5)]
    return [t for t in candidates if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]


def nice_step(span: float) -> float:
    """A 1-2-5 step giving at most ``MAX_X_TICKS`` intervals over ``span`` (> 0)."""
    raw = span / MAX_X_TICKS
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def frame(result: dict[str, Any]) -> Frame:
    """Ranges holding every plotted point and the saturation line (never empty)."""
    xs = [_offered(row) for row in result.get("rates", [])] + [saturation_tps(result) or 0.0]
    x_top = 1.05 * max((x for x in xs if x > 0), default=1.0)  # room right; NaN is not > 0
    step = nice_step(x_top)
    x_max = step * math.ceil(x_top * (1 - 1e-9) / step)
    latencies = [ms for s in SERIES for _, ms in points(result, s.key)]
    if not latencies:
        return Frame(x_max, step, *DEFAULT_MS)
    y_lo, y_hi = _step_floor(min(latencies)), _step_ceil(max(latencies))
    if y_hi <= y_lo:  # one value, exactly on a step: a step either side
        y_lo, y_hi = _step_floor(y_lo / 1.5), _step_ceil(y_hi * 1.5)
    return Frame(x_max, step, y_lo, y_hi)


def _number(value: float) -> str:
    return f"{value:g}" if value < 1e6 else f"{value:.0f}"


def svg_attrs(attrs: dict[str, str]) -> str:
    """Keyword arguments as SVG attributes: ``text_anchor`` is ``text-anchor``, ``class_`` class."""
    return "".join(f" {k.rstrip('_').replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())


def svg_text(x: float, y: float, content: str, **attrs: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{svg_attrs(attrs)}>{escape(content)}</text>'


def svg_line(x1: float, y1: float, x2: float, y2: float, stroke: str, **attrs: str) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{stroke}"{svg_attrs(attrs)}/>'
    )


def _x_ticks(f: Frame) -> list[float]:
    return [k * f.x_step for k in range(round(f.x_max / f.x_step) + 1)]


def _grid(f: Frame) -> list[str]:
    """Light lines at every tick, under everything else."""
    out = ['<g class="grid">']
    out += [svg_line(f.x(tps), TOP, f.x(tps), BOTTOM, "#e5e5e5") for tps in _x_ticks(f)]
    out += [svg_line(LEFT, f.y(ms), RIGHT, f.y(ms), "#e5e5e5") for ms in log_ticks(f.y_lo, f.y_hi)]
    return [*out, "</g>"]


def _x_axis(f: Frame) -> list[str]:
    out = ['<g class="x-axis">', svg_line(LEFT, BOTTOM, RIGHT, BOTTOM, "black")]
    for tps in _x_ticks(f):
        x = f.x(tps)
        out.append(svg_line(x, BOTTOM, x, BOTTOM + 5, "black"))
        out.append(svg_text(x, BOTTOM + 18, _number(tps), text_anchor="middle", class_="x-tick"))
    label = "offered load (tx/s)"
    out.append(svg_text((LEFT + RIGHT) / 2, BOTTOM + 42, label, text_anchor="middle"))
    return [*out, "</g>"]


def _y_axis(f: Frame) -> list[str]:
    out = ['<g class="y-axis">', svg_line(LEFT, TOP, LEFT, BOTTOM, "black")]
    for ms in log_ticks(f.y_lo, f.y_hi):
        y = f.y(ms)
        out.append(svg_line(LEFT - 5, y, LEFT, y, "black"))
        out.append(svg_text(LEFT - 8, y + 4, _number(ms), text_anchor="end", class_="y-tick"))
    mid = (TOP + BOTTOM) / 2
    out.append(
        svg_text(20, mid, "latency (ms, log scale)", text_anchor="middle",
              transform=f"rotate(-90 20 {mid:.1f})")
    )  # fmt: skip
    return [*out, "</g>"]


def _series(f: Frame, series: Series, pts: Sequence[tuple[float, float]]) -> list[str]:
    coords = " ".join(f"{f.x(x):.1f},{f.y(ms):.1f}" for x, ms in pts)
    dash = f' stroke-dasharray="{DASH}"' if series.dashed else ""
    out = [
        f'<g class="series" data-series="{series.key}">',
        f'<polyline points="{coords}" fill="none" stroke="{series.colour}" '
        f'stroke-width="2"{dash}/>',
    ]
    for x, ms in pts:
        out.append(f'<circle cx="{f.x(x):.1f}" cy="{f.y(ms):.1f}" r="3.5" fill="{series.colour}"/>')
    return [*out, "</g>"]


def _saturation(f: Frame, tps: float) -> list[str]:
    x = f.x(tps)
    left = x > (LEFT + RIGHT) / 2  # the label on the side with room
    label = f"saturation {tps:.0f} tx/s"
    anchor = "end" if left else "start"
    return [
        '<g class="saturation">',
        svg_line(x, TOP, x, BOTTOM, "#555555", stroke_width="1.5", stroke_dasharray="4,4"),
        svg_text(x - 5 if left else x + 5, TOP + 14, label, text_anchor=anchor),
        "</g>",
    ]


def _legend() -> list[str]:
    out = ['<g class="legend">']
    for k, series in enumerate(SERIES):
        y = TOP + 10 + 22 * k
        dash = {"stroke_dasharray": DASH} if series.dashed else {}
        out.append(svg_line(RIGHT + 20, y, RIGHT + 50, y, series.colour, stroke_width="2", **dash))
        out.append(f'<circle cx="{RIGHT + 35}" cy="{y}" r="3.5" fill="{series.colour}"/>')
        out.append(svg_text(RIGHT + 58, y + 4, series.label))
    return [*out, "</g>"]


def title(result: dict[str, Any]) -> str:
    nodes, tx_bytes = result.get("nodes", "?"), result.get("tx_bytes", "?")
    return f"seqnet, n={nodes} validators, {tx_bytes} B transactions: latency against offered load"


def latency_svg(result: dict[str, Any]) -> str:
    """A standalone SVG document: the four latency series against offered load, log-scale y."""
    f = frame(result)
    body = [*_grid(f), *_x_axis(f), *_y_axis(f)]
    for series in SERIES:
        body += _series(f, series, points(result, series.key))
    sat = saturation_tps(result)
    if sat is not None:
        body += _saturation(f, sat)
    body += _legend()
    return svg_document(WIDTH, HEIGHT, title(result), body)


def svg_document(width: int, height: int, heading: str, body: Sequence[str]) -> str:
    """A standalone SVG document: white background, ``heading`` centred on top, ``body``."""
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        svg_text(width / 2, 26, heading, text_anchor="middle", font_size="15"),
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"


def write_latency_svg(result: dict[str, Any], path: pathlib.Path) -> None:
    """Write :func:`latency_svg` of ``result`` to ``path`` (UTF-8)."""
    path.write_text(latency_svg(result), encoding="utf-8")
