"""Fairness in the simulator: front-running, censorship and the other policies.

The long runs are ``seqnet sim --fairness --seeds 1000``; these are small subsets.
"""

from __future__ import annotations

from ops.sim.fairness import FairnessConfig, sweep_fairness
from ops.sim.runner import SweepConfig, sweep


def rows_by(config: FairnessConfig) -> dict[tuple[str, str], object]:
    return {(r.attacker, r.policy): r for r in sweep_fairness(config)}


def test_median_timestamp_blunts_a_front_running_leader() -> None:
    config = FairnessConfig(attackers=("front-run-naive", "front-run"), seeds=8, start_seed=500)
    rows = rows_by(config)
    arrival, median = (
        rows[("front-run-naive", "arrival")],
        rows[("front-run-naive", "median-timestamp")],
    )
    assert arrival.led_attacks > 50 and arrival.led_rate > 0.95  # type: ignore[attr-defined]
    assert median.led_rate <= arrival.led_rate / 10  # type: ignore[attr-defined]
    strong = rows[("front-run", "median-timestamp")]
    assert strong.led_rate < rows[("front-run", "arrival")].led_rate  # type: ignore[attr-defined]


def test_a_censoring_leader_delays_its_targets_by_at_most_two_blocks() -> None:
    rows = rows_by(FairnessConfig(attackers=("censor",), seeds=8, start_seed=600))
    for row in rows.values():
        assert row.censored_blocks and max(row.censored_blocks) <= 2  # type: ignore[attr-defined]
        assert max(row.blocks) <= 2 and row.violations == 0  # type: ignore[attr-defined]


def test_batch_order_fair_runs_in_the_consensus_sweep_where_n_allows() -> None:
    config = SweepConfig(
        nodes=(5,), faults="all", seeds=6, start_seed=700, policy="batch-order-fair"
    )
    summary = sweep(config)
    assert not summary.failures, [r.violations for r in summary.failures]


def test_arrival_policy_keeps_consensus_safe_and_live() -> None:
    summary = sweep(SweepConfig(faults="all", seeds=6, start_seed=800, policy="arrival"))
    assert not summary.failures, [r.violations for r in summary.failures]
