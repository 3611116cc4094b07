"""A chaos run's report: a timeline picture per scenario and one HTML page with the verdicts.

The timeline (SVG, hand-written with ``ops/plot.py``'s helpers) shows, on one
time axis, each node's committed height as ``/v1/status`` gave it (a gap
where it did not answer), the height the rollup had received, and below the
latency from submission to the rollup per time bucket (p50 and p99, by
submission time); each fault window is shaded across both. The page
(``index.html``) holds the verdict table over all scenarios (stall, recovery
after each heal, latency before, during and after the faults), then per
scenario its picture inline, every checker's verdict with its evidence, and
the per-fault figures. Self-contained files: no script, no external style.
Beside them, ``<scenario>.json`` (the verdicts and figures) and
``<scenario>.history.json`` (everything recorded, for checking again).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from ops.chaos import checkers
from ops.chaos.history import History, to_json
from ops.chaos.runner import Outcome
from ops.commands import finite
from ops.plot import log_ticks, nice_step, svg_document, svg_line, svg_text

WIDTH, HEIGHT = 980, 640
LEFT, RIGHT = 70, 790  # the plot area; the legend is right of it
TOP1, BOTTOM1 = 60, 300  # heights
LANES_TOP, LANES_BOTTOM = 320, 380  # a lane per node: answering, syncing, silent
TOP2, BOTTOM2 = 400, 590  # latency
NODE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
FAULT_FILL = {
    "kill": "#f4c7c3",
    "pause": "#fde9b5",
    "restart_all": "#d9d2e9",
    "partition": "#c9daf8",
    "delay_loss": "#d0e0e3",
    "byzantine": "#ead1dc",
}
BUCKETS = 40  # latency buckets across the run, at least 1 s each


@dataclasses.dataclass(frozen=True, slots=True)
class Axis:
    """A linear time axis and the two panels' y mappings."""

    t_min: float
    t_max: float
    h_lo: float
    h_hi: float
    ms_lo: float
    ms_hi: float

    def x(self, t: float) -> float:
        return LEFT + (RIGHT - LEFT) * (t - self.t_min) / (self.t_max - self.t_min)

    def y_height(self, h: float) -> float:
        return BOTTOM1 - (BOTTOM1 - TOP1) * (h - self.h_lo) / (self.h_hi - self.h_lo)

    def y_ms(self, ms: float) -> float:
        span = math.log10(self.ms_hi) - math.log10(self.ms_lo)
        return BOTTOM2 - (BOTTOM2 - TOP2) * (math.log10(ms) - math.log10(self.ms_lo)) / span


def bucket_width(h: History) -> float:
    return max(1.0, round(h.load_end / BUCKETS))


def axis(h: History) -> Axis:
    heights = [s.height for s in h.statuses if s.committing and s.height is not None]
    heights += [d.height for d in h.deliveries]
    h_lo = min(heights, default=0)
    h_hi = max(max(heights, default=1), h_lo + 1)
    pad = 0.03 * (h_hi - h_lo)
    ms = [1000 * v for _, p50, p99, _ in checkers.latency_buckets(h, bucket_width(h))
          for v in (p50, p99) if v > 0]  # fmt: skip
    ms_lo = 10 ** math.floor(math.log10(min(ms))) if ms else 10.0
    ms_hi = 10 ** math.ceil(math.log10(max(ms))) if ms else 1000.0
    if ms_hi <= ms_lo:
        ms_hi = ms_lo * 10
    return Axis(0.0, max(h.end, 1.0), h_lo - pad, h_hi + pad, ms_lo, ms_hi)


def timeline_svg(h: History) -> str:
    """The picture of one run: heights per node, rollup height, latency, fault windows."""
    a = axis(h)
    body = _windows(h, a) + _time_axis(a) + _height_axis(a) + _latency_axis(a)
    for node in range(h.n):
        body += _node_heights(h, a, node)
    body += _lanes(h, a)
    body += _rollup_heights(h, a)
    body += _latency(h, a)
    body += _load_end(h, a)
    body += _legend(h)
    title = f"seqnet chaos: {h.scenario}, n={h.n}: committed height and latency over time"
    return svg_document(WIDTH, HEIGHT, title, body)


def _windows(h: History, a: Axis) -> list[str]:
    out = ['<g class="faults">']
    for w in h.windows:
        x1, x2 = a.x(w.start), a.x(min(w.end, a.t_max))
        fill = FAULT_FILL.get(w.kind, "#dddddd")
        for top, bottom in ((TOP1, LANES_BOTTOM), (TOP2, BOTTOM2)):
            out.append(
                f'<rect x="{x1:.1f}" y="{top}" width="{max(x2 - x1, 1):.1f}" '
                f'height="{bottom - top}" fill="{fill}" data-fault="{w.index}"/>'
            )
        what = f" {w.behaviour}" if w.behaviour else ""
        label = f"{w.index}: {w.kind}{what} {','.join(map(str, w.nodes))}"
        out.append(svg_text(x1 + 3, TOP1 + 12, label, font_size="11"))
    return [*out, "</g>"]


def _time_axis(a: Axis) -> list[str]:
    step = nice_step(a.t_max - a.t_min)
    out = ['<g class="x-axis">']
    for bottom in (BOTTOM1, BOTTOM2):
        out.append(svg_line(LEFT, bottom, RIGHT, bottom, "black"))
    k = 0
    while (t := k * step) <= a.t_max + 1e-9:
        x = a.x(t)
        for bottom in (BOTTOM1, BOTTOM2):
            out.append(svg_line(x, bottom, x, bottom + 5, "black"))
        out.append(svg_text(x, BOTTOM2 + 18, f"{t:g}", text_anchor="middle"))
        k += 1
    out.append(svg_text((LEFT + RIGHT) / 2, BOTTOM2 + 38, "seconds since the load started",
                        text_anchor="middle"))  # fmt: skip
    return [*out, "</g>"]


def _height_axis(a: Axis) -> list[str]:
    out = ['<g class="y-axis">', svg_line(LEFT, TOP1, LEFT, BOTTOM1, "black")]
    step = max(1.0, nice_step(a.h_hi - a.h_lo))
    h = math.ceil(a.h_lo / step) * step
    while h <= a.h_hi:
        y = a.y_height(h)
        out.append(svg_line(LEFT - 5, y, LEFT, y, "black"))
        out.append(svg_line(LEFT, y, RIGHT, y, "#eeeeee"))
        out.append(svg_text(LEFT - 8, y + 4, f"{h:g}", text_anchor="end"))
        h += step
    mid = (TOP1 + BOTTOM1) / 2
    out.append(svg_text(18, mid, "committed height", text_anchor="middle",
                        transform=f"rotate(-90 18 {mid:.1f})"))  # fmt: skip
    return [*out, "</g>"]


def _latency_axis(a: Axis) -> list[str]:
    out = ['<g class="y-axis">', svg_line(LEFT, TOP2, LEFT, BOTTOM2, "black")]
    for ms in log_ticks(a.ms_lo, a.ms_hi):
        y = a.y_ms(ms)
        out.append(svg_line(LEFT - 5, y, LEFT, y, "black"))
        out.append(svg_line(LEFT, y, RIGHT, y, "#eeeeee"))
        out.append(svg_text(LEFT - 8, y + 4, f"{ms:g}", text_anchor="end"))
    mid = (TOP2 + BOTTOM2) / 2
    out.append(svg_text(18, mid, "latency to the rollup (ms, log)", text_anchor="middle",
                        transform=f"rotate(-90 18 {mid:.1f})"))  # fmt: skip
    return [*out, "</g>"]


def _polyline(points: Sequence[tuple[float, float]], colour: str, **attrs: str) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<polyline points="{coords}" fill="none" stroke="{colour}"{extra}/>'


def _node_heights(h: History, a: Axis, node: int) -> list[str]:
    """One polyline per stretch the node answered (a gap where it was down or syncing)."""
    colour = NODE_COLOURS[node % len(NODE_COLOURS)]
    out = [f'<g class="node" data-node="{node}">']
    run: list[tuple[float, float]] = []
    for s in h.statuses:
        if s.node != node:
            continue
        if s.t < a.t_min:
            continue
        if s.committing and s.height is not None:
            run.append((a.x(s.t), a.y_height(s.height)))
        elif run:
            out.append(_polyline(run, colour, stroke_width="1.5"))
            run = []
    if run:
        out.append(_polyline(run, colour, stroke_width="1.5"))
    return [*out, "</g>"]


def _lanes(h: History, a: Axis) -> list[str]:
    """Per node, a strip in its colour while it answered committing, grey while syncing."""
    lane = (LANES_BOTTOM - LANES_TOP) / max(h.n, 1)
    out = ['<g class="lanes">']
    for node in range(h.n):
        y = LANES_TOP + node * lane
        out.append(svg_text(LEFT - 8, y + lane * 0.8, f"node {node}", text_anchor="end",
                            font_size="9"))  # fmt: skip
        samples = [s for s in h.statuses if s.node == node and s.t >= a.t_min]
        spans: list[tuple[float, float, str]] = []
        for s, after in itertools.pairwise(samples):
            state = "up" if s.committing else "syncing" if s.height is not None else ""
            if spans and spans[-1][2] == state and math.isclose(spans[-1][1], s.t):
                spans[-1] = (spans[-1][0], after.t, state)
            else:
                spans.append((s.t, after.t, state))
        colour = NODE_COLOURS[node % len(NODE_COLOURS)]
        for start, end, state in spans:
            if state:
                fill = colour if state == "up" else "#bbbbbb"
                x1, x2 = a.x(start), a.x(end)
                out.append(
                    f'<rect x="{x1:.1f}" y="{y + 1:.1f}" width="{x2 - x1:.1f}" '
                    f'height="{lane - 2:.1f}" fill="{fill}" data-state="{state}"/>'
                )
    return [*out, "</g>"]


def _rollup_heights(h: History, a: Axis) -> list[str]:
    progress = checkers.delivery_progress(h)
    rises = zip(progress.times, progress.heights, strict=True)
    points = [(a.x(t), a.y_height(ht)) for t, ht in rises if t >= a.t_min]
    if not points:
        return []
    return ['<g class="rollup">', _polyline(points, "black", stroke_dasharray="5,3"), "</g>"]


def _latency(h: History, a: Axis) -> list[str]:
    width = bucket_width(h)
    buckets = checkers.latency_buckets(h, width)
    out = ['<g class="latency">']
    for k, (style, colour) in enumerate((("", "#d62728"), ("6,4", "#d62728"))):
        points = [(a.x(start + width / 2), a.y_ms(max(1000 * (p50, p99)[k], a.ms_lo)))
                  for start, p50, p99, _ in buckets if start >= a.t_min]  # fmt: skip
        if points:
            dash = {"stroke_dasharray": style} if style else {}
            out.append(_polyline(points, colour, stroke_width="2", **dash))
    return [*out, "</g>"]


def _load_end(h: History, a: Axis) -> list[str]:
    x = a.x(h.load_end)
    return [
        '<g class="load-end">',
        svg_line(x, TOP1, x, BOTTOM2, "#555555", stroke_dasharray="2,3"),
        svg_text(x - 3, BOTTOM1 - 6, "load ends; drain", font_size="10", text_anchor="end"),
        "</g>",
    ]


def _legend(h: History) -> list[str]:
    out = ['<g class="legend">']
    rows: list[tuple[str, str, str]] = [
        (f"node {i}", NODE_COLOURS[i % len(NODE_COLOURS)], "") for i in range(h.n)
    ]
    rows += [("rollup received", "black", "5,3"), ("latency p50", "#d62728", ""),
             ("latency p99", "#d62728", "6,4")]  # fmt: skip
    for k, (label, colour, dash) in enumerate(rows):
        y = TOP1 + 10 + 20 * k
        extra = {"stroke_dasharray": dash} if dash else {}
        out.append(svg_line(RIGHT + 20, y, RIGHT + 50, y, colour, stroke_width="2", **extra))
        out.append(svg_text(RIGHT + 58, y + 4, label))
    y = TOP1 + 10 + 20 * len(rows) + 10
    lanes = (("#bbbbbb", "lane: syncing"), ("#ffffff", "lane: blank = silent"))
    for fill, label in lanes:
        out.append(f'<rect x="{RIGHT + 20}" y="{y - 8}" width="30" height="12" fill="{fill}" '
                   'stroke="#999999"/>')  # fmt: skip
        out.append(svg_text(RIGHT + 58, y + 3, label))
        y += 20
    for kind, fill in FAULT_FILL.items():
        out.append(f'<rect x="{RIGHT + 20}" y="{y - 8}" width="30" height="12" fill="{fill}"/>')
        out.append(svg_text(RIGHT + 58, y + 3, kind))
        y += 20
    return [*out, "</g>"]


# ------------------------------------------------------------ figures and the page


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.0f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def figures(outcome: Outcome) -> dict[str, str]:
    """One scenario's row of the verdict table, as text."""
    windows = outcome.verdict("liveness").figures.get("windows", [])
    stalls = [w.get("stall_s") for w in windows if w["expected"] == "stall"]
    gaps = [w.get("max_commit_gap_s") for w in windows if w["expected"] == "live"]
    lat = outcome.latency
    loss = outcome.verdict("no loss").figures
    return {
        "scenario": outcome.scenario.name,
        "verdict": "PASS" if outcome.ok else "FAIL",
        "words": outcome.words(),
        "stall_s": " / ".join(_s(v) for v in stalls) or "-",
        "longest_gap_s": " / ".join(_s(v) for v in gaps) or "-",
        "commit_recovery_s": " / ".join(_s(w["commit_recovery_s"]) for w in windows) or "-",
        "delivery_recovery_s": " / ".join(_s(w["delivery_recovery_s"]) for w in windows) or "-",
        "rejoin_s": " / ".join(_s(w["rejoin_s"]) for w in windows) or "-",
        **{f"latency_{p}": f"{_ms(lat[p]['p50'])} / {_ms(lat[p]['p99'])}" for p in checkers.PHASES},
        "acked_lost": f"{loss.get('acknowledged', 0)} / {loss.get('lost', 0)}" + _excused(loss),
    }


def _excused(loss: dict[str, Any]) -> str:
    """`` (2 at risk, 5 stranded)`` or nothing."""
    parts = [f"{loss[k]} {k.replace('_', ' ')}" for k in ("at_risk", "stranded") if loss.get(k)]
    return f" ({', '.join(parts)})" if parts else ""


COLUMNS = (
    ("scenario", "scenario"),
    ("verdict", "verdict"),
    ("stall_s", "stall s"),
    ("longest_gap_s", "longest gap s"),
    ("commit_recovery_s", "commits resumed s"),
    ("delivery_recovery_s", "deliveries resumed s"),
    ("rejoin_s", "nodes back s"),
    ("latency_before", "p50/p99 ms before"),
    ("latency_during", "during"),
    ("latency_after", "after"),
    ("acked_lost", "acked / lost"),
)


def table_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """The verdict table as Markdown (what ``chaos run`` prints)."""
    rows = [figures(o) for o in outcomes]
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    return [head, rule] + ["| " + " | ".join(r[key] for key, _ in COLUMNS) + " |" for r in rows]


def verdict_lines(outcome: Outcome) -> list[str]:
    """Each checker's verdict and evidence, as printed lines."""
    head = f"{outcome.scenario.name}: {'PASS' if outcome.ok else 'FAIL'}: {outcome.words()}"
    lines = [head]
    if not outcome.scenario.expect_safe:
        lines.append(f"  {'expected':<14} {'':<9} {_beyond(outcome)}")
    for v in outcome.verdicts:
        lines.append(f"  {v.checker:<14} {'ok' if v.ok else 'VIOLATED':<9} {v.summary}")
        lines += [f"  {'':<14} {'':<9} - {e}" for e in v.evidence]
    lat = outcome.latency
    lines.append(
        "  latency        to the rollup, p50/p99 ms: "
        + ", ".join(
            f"{p} {_ms(lat[p]['p50'])}/{_ms(lat[p]['p99'])} ({lat[p]['count']} tx)"
            for p in checkers.PHASES
        )
    )
    lines += [f"  note           {n}" for n in outcome.notes]
    return lines


def _beyond(o: Outcome) -> str:
    """What a scenario beyond the fault model (expect.safe = false) expects."""
    s = o.scenario
    why = (
        f"node {s.broken.node} runs a broken build ({s.broken.build})"
        if s.broken is not None
        else f"more than f = {s.f} validators are Byzantine"
    )
    return f"beyond the fault model ({why}): the checkers are expected to report it"


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.ok { color: #1a7f37; font-weight: bold; }
.bad { color: #cf222e; font-weight: bold; }
td.evidence { font-family: monospace; font-size: 90%; }
"""


def html_page(outcomes: Sequence[Outcome], svgs: Sequence[str]) -> str:
    """The report page: the verdict table, then each scenario in full, pictures inline."""
    rows = [figures(o) for o in outcomes]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>seqnet chaos report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>seqnet chaos report</h1>",
        "<table><tr>" + "".join(f"<th>{escape(t)}</th>" for _, t in COLUMNS) + "</tr>",
    ]
    for r in rows:
        cells = []
        for key, _ in COLUMNS:
            value = escape(r[key])
            if key == "verdict":
                cls = "ok" if r[key] == "PASS" else "bad"
                value = f'<span class="{cls}">{value}</span>: {escape(r["words"])}'
            cells.append(f"<td>{value}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    out.append(
        "<p>Times in seconds from the start of the load. Stall: from the last commit before a "
        "heal to the first after it, where fewer than a quorum were up. Longest gap: the "
        "longest time without a commit during a fault that kept a quorum. Resumed: after "
        "each heal, the first new commit, and the first height committed after the heal at "
        "the rollup. Nodes back: until each healed node reached the height of the heal. "
        "Latency: submission to the verifying rollup follower, by submission time (before "
        "the first fault, during any, after).</p>"
    )
    for outcome, svg in zip(outcomes, svgs, strict=True):
        out += _section(outcome, svg)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _section(o: Outcome, svg: str) -> list[str]:
    s = o.scenario
    out = [
        f'<h2 id="{escape(s.name)}">{escape(s.name)}</h2>',
        f"<p>{escape(s.description)}</p>",
        f"<p>{s.nodes} nodes (f = {s.f}, quorum {s.quorum}), {s.load.rate} tx/s of "
        f"{s.load.tx_bytes} B for {s.run_s:g} s, liveness bound {s.liveness_bound_s:g} s, "
        f"expected {'live' if s.expect_live else 'to stall'} during faults; cluster "
        f"{escape(o.directory)}.</p>",
        *([f"<p><b>Expected to fail:</b> {escape(_beyond(o))}.</p>"] if not s.expect_safe else []),
        svg.split("\n", 1)[1],  # inline, without the XML declaration
        "<table><tr><th>checker</th><th>verdict</th><th>summary</th><th>evidence</th></tr>",
    ]
    for v in o.verdicts:
        cls, word = ("ok", "ok") if v.ok else ("bad", "VIOLATED")
        evidence = "<br>".join(escape(e) for e in v.evidence)
        out.append(
            f'<tr><td>{escape(v.checker)}</td><td class="{cls}">{word}</td>'
            f'<td>{escape(v.summary)}</td><td class="evidence">{evidence}</td></tr>'
        )
    out.append("</table>")
    windows = o.verdict("liveness").figures.get("windows", [])
    if windows:
        out.append(
            "<table><tr><th>fault</th><th>nodes</th><th>window s</th><th>down</th>"
            "<th>expected</th><th>stall / longest gap s</th><th>commits resumed s</th>"
            "<th>deliveries resumed s</th><th>nodes back s</th></tr>"
        )
        for w in windows:
            gap = w.get("stall_s") if w["expected"] == "stall" else w.get("max_commit_gap_s")
            out.append(
                f"<tr><td>{w['index']}: {escape(w['kind'])} {escape(w['targets'])}"
                f"{' (' + escape(w['detail']) + ')' if w.get('detail') else ''}</td>"
                f"<td>{','.join(map(str, w['nodes']))}</td>"
                f"<td>{w['start']:.1f}-{w['end']:.1f}</td><td>{w['down']}</td>"
                f"<td>{w['expected']}</td><td>{_s(gap)}</td><td>{_s(w['commit_recovery_s'])}</td>"
                f"<td>{_s(w['delivery_recovery_s'])}</td><td>{_s(w['rejoin_s'])}</td></tr>"
            )
        out.append("</table>")
    lat = o.latency
    out.append("<table><tr><th>latency to the rollup</th><th>p50 ms</th><th>p99 ms</th>"
               "<th>transactions</th></tr>")  # fmt: skip
    for p in checkers.PHASES:
        out.append(
            f"<tr><td>{p}</td><td>{_ms(lat[p]['p50'])}</td><td>{_ms(lat[p]['p99'])}</td>"
            f"<td>{lat[p]['count']}</td></tr>"
        )
    out.append("</table>")
    if o.notes:
        out.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in o.notes) + "</ul>")
    return out


def summary_json(o: Outcome) -> dict[str, Any]:
    """The verdicts and figures of one scenario (``<scenario>.json``)."""
    summary: dict[str, Any] = finite({
        "scenario": dataclasses.asdict(o.scenario),
        "ok": o.ok,
        "safe": o.safe,
        "live": o.live,
        "nothing_lost": o.nothing_lost,
        "verdicts": [dataclasses.asdict(v) for v in o.verdicts],
        "latency_s": o.latency,
        "figures": figures(o),
        "notes": o.notes,
        "cluster": o.directory,
    })  # fmt: skip
    return summary


def write(directory: Path, outcomes: Sequence[Outcome]) -> Path:
    """Write the page, one SVG and two JSON files per scenario; the page's path."""
    directory.mkdir(parents=True, exist_ok=True)
    svgs = []
    for o in outcomes:
        svg = timeline_svg(o.history)
        svgs.append(svg)
        name = o.scenario.name
        (directory / f"{name}.svg").write_text(svg, encoding="utf-8")
        (directory / f"{name}.json").write_text(json.dumps(summary_json(o), indent=2) + "\n")
        history = json.dumps(finite(to_json(o.history)), separators=(",", ":"))
        (directory / f"{name}.history.json").write_text(history + "\n")
    page = directory / "index.html"
    page.write_text(html_page(outcomes, svgs), encoding="utf-8")
    return page
