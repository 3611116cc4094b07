"""``seqnet soak``: a real short soak through the command line, and its verdict's arithmetic."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from ops import soak
from ops.commands import soak as soak_command
from tests.cluster import free_base_port

NODES = 4
RATE = 40
SECONDS = 20
SAMPLE_S = 2


def test_a_short_soak_samples_every_node_and_loses_nothing() -> None:
    args = ["soak", "--nodes", str(NODES), "--rate", str(RATE), "--minutes", str(SECONDS / 60)]
    base_port = free_base_port(NODES, (0, 1000, 2000))  # libp2p, API and metrics ports
    args += ["--sample-s", str(SAMPLE_S), "--base-port", str(base_port), "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "sequencer_net.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)  # stdout is the JSON document alone
    samples, verdict = out["samples"], out["verdict"]
    assert len(samples) >= SECONDS // SAMPLE_S, samples  # one at 0 s, every 2 s, one at the end
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    assert samples[-1]["t"] >= SECONDS - 1
    for s in samples:
        assert len(s["rss_mib"]) == NODES
        assert all(20 < mib < 4096 for mib in s["rss_mib"]), s  # read from /proc, not null
        assert all(h is not None and h > 0 for h in s["height"]), s
    assert all(a < b for a, b in zip(samples[0]["height"], samples[-1]["height"], strict=True))
    assert all(d > 0 for d in samples[-1]["decrypted"]), samples[-1]
    middle = [s["offered_tps"] for s in samples[1:-1]]
    assert all(0.5 * RATE <= r <= 1.5 * RATE for r in middle), middle
    assert verdict["ok"] and verdict["problems"] == [], verdict
    assert verdict["lost"] == 0 and verdict["invalid"] == 0
    assert verdict["acked"] == verdict["sent"] >= 0.95 * RATE * SECONDS
    assert verdict["decrypted_node0"] == verdict["acked"]
    assert verdict["node_shortfall"] == [0] * NODES
    assert verdict["generator_kept_up"] and verdict["offered_pct"] > 95
    assert [m["node"] for m in verdict["memory"]] == list(range(NODES))
    for m in verdict["memory"]:
        assert m["half_mib"] > 20 and m["end_mib"] > 20 and m["slope_mib_per_10min"] is not None
    assert out["exit_codes"] == [0] * NODES
    header = soak.table_header(NODES)
    assert header in result.stderr and "RESULT: ok" in result.stderr, result.stderr[-3000:]


def test_slope_is_least_squares_and_ignores_unread_samples() -> None:
    assert soak.slope_per_s([(0, 100.0), (10, 101.0), (20, 102.0)]) == pytest.approx(0.1)
    assert soak.slope_per_s([(0, 100.0), (10, float("nan")), (20, 104.0)]) == pytest.approx(0.2)
    assert soak.slope_per_s([(5, 100.0)]) != soak.slope_per_s([(5, 100.0)])  # NaN


def _sample(t: float, rss: list[float]) -> dict[str, Any]:
    return {"t": t, "rss_mib": rss}


def test_memory_verdict_compares_the_second_half_and_calls_growth_by_its_slope() -> None:
    samples = [_sample(t, [100.0 + t / 60, 200.0]) for t in range(0, 1201, 60)]  # 1 MiB/min
    flat_and_leaking = soak.memory_verdict(samples, 1200)
    leaking, flat = flat_and_leaking
    assert leaking["half_t"] == 600 and leaking["half_mib"] == pytest.approx(110)
    assert leaking["end_mib"] == pytest.approx(120) and leaking["growth_mib"] == pytest.approx(10)
    assert leaking["growth_pct"] == pytest.approx(100 * 10 / 110)
    assert leaking["slope_mib_per_10min"] == pytest.approx(10)
    assert not leaking["flat"] and flat["flat"] and flat["growth_mib"] == 0


def _verdict(tracker: soak.Tracker, short: list[int | None]) -> dict[str, Any]:
    offered = soak.Offered(sent=3, acked=3, seconds=1.0)
    samples = [_sample(0, [100.0]), _sample(1, [100.0])]
    return soak.verdict(soak.SoakConfig(rate=3), samples, offered, tracker, short, [])


def test_an_acknowledged_digest_never_decrypted_is_lost() -> None:
    tracker = soak.Tracker("127.0.0.1:1", 1)  # never started: fed by hand
    tracker.seen([b"c" * 32])  # decrypted before its acknowledgement came back
    tracker.ack([b"a" * 32, b"b" * 32, b"c" * 32])
    tracker.seen([b"a" * 32])
    v = _verdict(tracker, [0])
    assert v["lost"] == 1 and not v["ok"] and tracker.outstanding == {b"b" * 32}
    assert v["decrypted_unacknowledged"] == 0 and v["decrypted_node0"] == 2
    tracker.seen([b"b" * 32])
    assert _verdict(tracker, [0])["ok"]
    assert not _verdict(tracker, [2])["ok"]  # a node whose counts fall short fails too
    assert not _verdict(tracker, [None])["ok"]


def test_a_node_counts_short_per_namespace() -> None:
    acked = Counter({"rollup-a": 5, "rollup-b": 5})
    assert soak.node_shortfall(acked, {"rollup-a": 5.0, "rollup-b": 5.0}) == 0
    assert soak.node_shortfall(acked, {"rollup-a": 7.0, "rollup-b": 3.0}) == 2  # no netting
    assert soak.node_shortfall(acked, None) is None


def test_the_command_exits_nonzero_when_the_verdict_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_run(config: soak.SoakConfig) -> dict[str, Any]:
        return {"samples": [], "verdict": {"ok": False, "lost": 1, "slope": float("nan")}}

    monkeypatch.setattr(soak, "run", fake_run)
    parser = argparse.ArgumentParser()
    soak_command.add(parser.add_subparsers())
    args = parser.parse_args(["soak", "--minutes", "0.5", "--json"])
    assert soak_command.run(args) == 1
    assert json.loads(capsys.readouterr().out)["verdict"]["slope"] is None  # NaN as null
