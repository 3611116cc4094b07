"""A dependency-free SVG bar chart, for the fairness results in docs/."""

from __future__ import annotations

from html import escape

WIDTH, BAR, GAP, LEFT, TOP = 640, 26, 10, 230, 40
COLOURS = {"arrival": "#d1495b", "median-timestamp": "#00798c", "batch-order-fair": "#edae49"}


def bar_chart(title: str, bars: list[tuple[str, str, float]]) -> str:
    """``bars`` are (label, series, value in 0..1); one horizontal bar each, as percent."""
    height = TOP + len(bars) * (BAR + GAP) + 30
    scale = WIDTH - LEFT - 80
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="10" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, series, value) in enumerate(bars):
        y = TOP + i * (BAR + GAP)
        w = max(1.0, value * scale)
        colour, baseline = COLOURS.get(series, "#666"), y + BAR * 0.68
        out += [
            f'<text x="{LEFT - 8}" y="{baseline:.0f}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{LEFT}" y="{y}" width="{w:.1f}" height="{BAR}" fill="{colour}"/>',
            f'<text x="{LEFT + w + 6:.1f}" y="{baseline:.0f}">{value:.1%}</text>',
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"
