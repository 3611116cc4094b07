"""The latency picture of ``seqnet bench`` (``ops.plot``), from hand-built results: no cluster."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import pathlib
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import ops.bench
from ops import plot
from ops.commands import bench as bench_command
from sequencer_net.cli.args import CliError

SVG = "{http://www.w3.org/2000/svg}"
NAN = float("nan")
KEYS = ("p50_ms", "p99_ms", "rollup_p50_ms", "rollup_p99_ms")


def row(
    rate: int, offered: float, p50: float, p99: float, r50: float, r99: float
) -> dict[str, Any]:
    return {
        "rate": rate,
        "offered": offered,
        "p50_ms": p50,
        "p99_ms": p99,
        "rollup_p50_ms": r50,
        "rollup_p99_ms": r99,
        "decrypted": rate * 10,
        "lost": 0,
    }


def result(*rows: dict[str, Any], decrypted: float = 3000, seconds: float = 4.0) -> dict[str, Any]:
    return {
        "nodes": 4,
        "tx_bytes": 256,
        "ceiling_tps": 2000.0,
        "rates": list(rows),
        "saturation": {"backlog": 3000, "decrypted": decrypted, "seconds": seconds},
    }


THREE = result(
    row(25, 24.9, 30, 60, 45, 90),
    row(100, 99.5, 45, 150, 70, NAN),
    row(200, 198.0, 400, 1800, 600, 2600),
)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def series(root: ET.Element) -> dict[str, ET.Element]:
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "series"]
    return {str(g.get("data-series")): g for g in groups}


def polyline_points(group: ET.Element) -> list[tuple[float, float]]:
    lines = group.findall(f"{SVG}polyline")
    assert len(lines) == 1
    pairs = (p.split(",") for p in str(lines[0].get("points")).split())
    return [(float(x), float(y)) for x, y in pairs]


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def y_ticks(root: ET.Element) -> list[tuple[float, float]]:
    """(value in ms, y) of each y-axis tick label."""
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "y-tick"]
    return [(float(t.text or ""), float(str(t.get("y")))) for t in labels]


def test_the_svg_parses_with_a_title_axis_labels_and_a_legend() -> None:
    root = parse(plot.latency_svg(THREE))
    words = texts(root)
    title = "seqnet, n=4 validators, 256 B transactions: latency against offered load"
    assert title in words
    assert "offered load (tx/s)" in words and "latency (ms, log scale)" in words
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "legend")
    assert [t.text for t in legend.iter(f"{SVG}text")] == [s.label for s in plot.SERIES]


def test_one_polyline_per_series_with_a_point_and_a_marker_per_measured_rate() -> None:
    groups = series(parse(plot.latency_svg(THREE)))
    assert sorted(groups) == sorted(KEYS)
    for key in ("p50_ms", "p99_ms", "rollup_p50_ms"):
        assert len(polyline_points(groups[key])) == 3, key
        assert len(groups[key].findall(f"{SVG}circle")) == 3, key
    assert len(polyline_points(groups["rollup_p99_ms"])) == 2  # the NaN one skipped


def test_nan_points_are_skipped_not_drawn() -> None:
    svg = plot.latency_svg(THREE)
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    groups = series(parse(svg))
    xs_full = [x for x, _ in polyline_points(groups["rollup_p50_ms"])]
    xs_gap = [x for x, _ in polyline_points(groups["rollup_p99_ms"])]
    assert xs_gap == [xs_full[0], xs_full[2]]  # the middle rate is the one without a p99


def test_p99_series_are_dashed_and_p50_series_are_not() -> None:
    groups = series(parse(plot.latency_svg(THREE)))
    for key, group in groups.items():
        dashed = group.findall(f"{SVG}polyline")[0].get("stroke-dasharray") is not None
        assert dashed == ("p99" in key), key


def test_points_are_drawn_in_order_of_offered_load() -> None:
    shuffled = result(*reversed(THREE["rates"]))
    for key in KEYS:
        xs = [x for x, _ in polyline_points(series(parse(plot.latency_svg(shuffled)))[key])]
        assert xs == sorted(xs), key


def test_offered_falls_back_to_the_rate_asked() -> None:
    measured = result(row(50, 50.0, 30, 60, 45, 90), row(100, 100.0, 40, 80, 50, 100))
    unmeasured = result(row(50, NAN, 30, 60, 45, 90), row(100, 100.0, 40, 80, 50, 100))
    del unmeasured["rates"][1]["offered"]
    assert plot.latency_svg(unmeasured) == plot.latency_svg(measured)


def test_the_saturation_line_is_labelled_with_its_throughput() -> None:
    root = parse(plot.latency_svg(THREE))  # 3000 decrypted in 4 s
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "saturation")
    assert [t.text for t in group.iter(f"{SVG}text")] == ["saturation 750 tx/s"]
    line = group.findall(f"{SVG}line")[0]
    assert line.get("x1") == line.get("x2") and line.get("stroke-dasharray")
    right_of = max(x for g in series(root).values() for x, _ in polyline_points(g))
    assert float(str(line.get("x1"))) > right_of  # 750 tx/s is beyond the 198 offered


@pytest.mark.parametrize("seconds", [0.0, NAN])
def test_no_saturation_line_when_it_was_not_measured(seconds: float) -> None:
    root = parse(plot.latency_svg(result(*THREE["rates"], seconds=seconds)))
    assert not [g for g in root.iter(f"{SVG}g") if g.get("class") == "saturation"]
    assert not any(t.startswith("saturation") for t in texts(root))


def test_a_single_rate_works() -> None:
    single = result(row(25, 24.7, 100, 100, 100, 100), decrypted=0, seconds=0.0)
    root = parse(plot.latency_svg(single))
    for key, group in series(root).items():
        [(x, y)] = polyline_points(group)
        assert plot.LEFT < x < plot.RIGHT and plot.TOP < y < plot.BOTTOM, key
    ticks = [ms for ms, _ in y_ticks(root)]
    assert min(ticks) < 100 < max(ticks)


def test_nothing_measured_still_draws_the_axes() -> None:
    empty = result(row(25, NAN, NAN, NAN, NAN, NAN), decrypted=NAN, seconds=NAN)
    root = parse(plot.latency_svg(empty))
    assert all(polyline_points(g) == [] for g in series(root).values())
    assert [ms for ms, _ in y_ticks(root)] == [10, 20, 50, 100, 200, 500, 1000]
    parse(plot.latency_svg({}))


def test_y_ticks_are_the_1_2_5_steps_around_the_data() -> None:
    root = parse(plot.latency_svg(THREE))  # latencies from 30 to 2600 ms
    assert [ms for ms, _ in y_ticks(root)] == [20, 50, 100, 200, 500, 1000, 2000, 5000]


def test_the_y_axis_is_logarithmic_higher_latency_higher_up() -> None:
    root = parse(plot.latency_svg(THREE))
    ticks = y_ticks(root)
    ys = [y for _, y in ticks]
    assert all(a > b for a, b in itertools.pairwise(ys))  # SVG y grows downwards
    y_at = dict(ticks)
    assert y_at[20] - y_at[200] == pytest.approx(y_at[500] - y_at[5000], abs=0.2)  # a decade
    assert y_at[100] - y_at[200] == pytest.approx(y_at[1000] - y_at[2000], abs=0.2)  # a doubling
    for key, group in series(root).items():
        latencies = [r[key] for r in THREE["rates"] if not math.isnan(r[key])]  # in load order
        by_latency = sorted(zip(latencies, polyline_points(group), strict=True))
        point_ys = [y for _, (_, y) in by_latency]
        assert all(a > b for a, b in itertools.pairwise(point_ys)), key


def test_write_latency_svg(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latency.svg"
    plot.write_latency_svg(THREE, path)
    assert path.read_text(encoding="utf-8") == plot.latency_svg(THREE)


# ------------------------------------------------------------ seqnet bench --plot


def bench_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="seqnet")
    bench_command.add(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> list[ops.bench.BenchConfig]:
    """``ops.bench.run`` returning ``THREE`` without a cluster; the configs it was given."""
    calls: list[ops.bench.BenchConfig] = []

    def run(config: ops.bench.BenchConfig) -> dict[str, Any]:
        calls.append(config)
        return THREE

    monkeypatch.setattr(ops.bench, "run", run)
    return calls


def test_bench_plot_writes_the_picture_and_says_where(
    tmp_path: pathlib.Path,
    fake_run: list[ops.bench.BenchConfig],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "latency.svg"
    args = bench_args("--plot", str(path))
    assert args.func(args) == 0
    assert len(fake_run) == 1
    assert path.read_text(encoding="utf-8") == plot.latency_svg(THREE)
    assert capsys.readouterr().out == f"latency plot written to {path}\n"


def test_bench_plot_with_json_keeps_stdout_one_json_document(
    tmp_path: pathlib.Path,
    fake_run: list[ops.bench.BenchConfig],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "latency.svg"
    args = bench_args("--json", "--plot", str(path))
    assert args.func(args) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["nodes"] == 4
    assert f"latency plot written to {path}" in out.err
    assert path.exists()


def test_bench_without_plot_writes_nothing(
    tmp_path: pathlib.Path,
    fake_run: list[ops.bench.BenchConfig],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = bench_args()
    assert args.plot is None and args.func(args) == 0
    assert capsys.readouterr().out == "" and list(tmp_path.iterdir()) == []


def test_bench_plot_into_a_missing_directory_fails_before_the_bench(
    tmp_path: pathlib.Path, fake_run: list[ops.bench.BenchConfig]
) -> None:
    args = bench_args("--plot", str(tmp_path / "missing" / "latency.svg"))
    with pytest.raises(CliError, match="no directory"):
        args.func(args)
    assert fake_run == []
