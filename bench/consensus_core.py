"""Benchmark (not a test): what the consensus core costs on one CPU core.

Runs fault-free simulations for n = 4 and n = 10 and measures, in the same run:
- the baseline: one raw ed25519 verification (libsodium through PyNaCl);
- node work per event (decode + validate + core) and events per second;
- signature checks per second and the share of node time spent in them;
- CPU per committed block, summed over all n replicas.
Costs are also given as multiples of the baseline, which is stable across noisy
machines. Usage: ``python bench/consensus_core.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

import nacl.bindings

import ops.sim.node as sim_node
import sequencer_net.base.committee as committee_module
from ops.sim.engine import simulate
from ops.sim.scenario import FaultSpec, draw
from sequencer_net.base.signing import SigningKey


@dataclass
class Meter:
    calls: int = 0
    seconds: float = 0.0

    def wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


def baseline_verify_us(batches: int = 7, batch: int = 1000) -> float:
    """Median cost of one raw ed25519 verification, after a warm-up batch."""
    key = SigningKey.derive("bench")
    msg = b"x" * 100
    sig = key.sign_raw(msg)
    times = []
    for _ in range(batches + 1):
        start = time.perf_counter()
        for _ in range(batch):
            nacl.bindings.crypto_sign_open(sig + msg, key.public_key)
        times.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(times[1:])


def measure(n: int, seed: int) -> dict[str, float]:
    """Node work = every message received (decode, validate, core) + every timer handled."""
    verify, node = Meter(), Meter()
    original_verify = committee_module.verify_signature
    original_receive, original_handle = sim_node.SimNode.receive, sim_node.SimNode.handle
    inside = [False]

    def receive(self: Any, sender: int, data: bytes) -> Any:
        inside[0] = True
        try:
            return original_receive(self, sender, data)
        finally:
            inside[0] = False

    def handle(self: Any, event: Any) -> Any:
        return original_handle(self, event) if inside[0] else timed_handle(self, event)

    timed_handle = node.wrap(original_handle)
    committee_module.verify_signature = verify.wrap(original_verify)  # type: ignore[assignment]
    sim_node.SimNode.receive = node.wrap(receive)  # type: ignore[method-assign]
    sim_node.SimNode.handle = handle  # type: ignore[method-assign]
    try:
        scenario = draw(seed, n, 0, FaultSpec.parse("none"), gst_ms=2000)
        start = time.perf_counter()
        result = simulate(scenario)
        total = time.perf_counter() - start
    finally:
        committee_module.verify_signature = original_verify
        sim_node.SimNode.receive, sim_node.SimNode.handle = original_receive, original_handle
    return {
        "events": node.calls,
        "node_seconds": node.seconds,
        "total_seconds": total,
        "verifies": verify.calls,
        "verify_seconds": verify.seconds,
        "blocks": result.height,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per committee size")
    args = parser.parse_args()
    results = {n: [measure(n, seed) for seed in range(args.runs)] for n in (4, 10)}
    base_us = baseline_verify_us()  # measured right after, on the same warmed-up core
    print(f"baseline: one ed25519 verify = {base_us:.1f} us ({1e6 / base_us:,.0f}/s)\n")
    print(
        "| n | events/s | node us/event (x verify) | sig checks/s | time in sig checks "
        "| CPU ms per block, all replicas (x verify) |"
    )
    print("|---|---|---|---|---|---|")
    for n, rows in results.items():
        ev_s = statistics.median(r["events"] / r["node_seconds"] for r in rows)
        us_ev = statistics.median(r["node_seconds"] / r["events"] * 1e6 for r in rows)
        ver_s = statistics.median(r["verifies"] / r["node_seconds"] for r in rows)
        share = statistics.median(r["verify_seconds"] / r["node_seconds"] for r in rows)
        ms_blk = statistics.median(r["node_seconds"] / r["blocks"] * 1e3 for r in rows)
        print(
            f"| {n} | {ev_s:,.0f} | {us_ev:.0f} ({us_ev / base_us:.1f}x) | {ver_s:,.0f} "
            f"| {share:.0%} | {ms_blk:.2f} ({ms_blk * 1e3 / base_us:.0f}x) |"
        )


if __name__ == "__main__":
    main()
