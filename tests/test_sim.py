"""Seeded simulator sweeps: safety under every attack, liveness after GST.

The long sweep (thousands of seeds) is ``seqnet sim``; these are fast subsets.
A failing run prints its seed; replay it with the command in the message.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

from ops.sim.engine import RunResult, Simulation, simulate
from ops.sim.runner import Summary, SweepConfig, sweep
from ops.sim.scenario import ATTACKS, FaultSpec, Scenario, draw
from sequencer_net.base import codec


def assert_clean(summary: Summary) -> None:
    failures = [
        f"seed {r.scenario.seed} n={r.scenario.n} {r.scenario.byzantine}: {r.violations}"
        for r in summary.failures
    ]
    assert not failures, "\n".join(failures)


def test_mixed_sweep_keeps_agreement_and_liveness() -> None:
    summary = sweep(SweepConfig(faults="all", seeds=45, start_seed=10_000, jobs=2))
    assert_clean(summary)
    assert summary.runs == 45 and summary.commits >= 45 * 20


@pytest.mark.parametrize("attack", ATTACKS)
def test_each_attack_with_f_byzantine_and_network_faults(attack: str) -> None:
    faults = f"drop,dup,delay,partition,crash,{attack}"
    summary = sweep(SweepConfig(faults=faults, seeds=6, start_seed=20_000))
    assert_clean(summary)
    assert summary.attacks[attack] == sum(((n - 1) // 3) for n in (4, 7, 10)) * 2


@pytest.mark.parametrize("n", [4, 7, 10])
def test_liveness_with_f_nodes_crashed_for_good(n: int) -> None:
    f = (n - 1) // 3
    config = SweepConfig(
        nodes=(n,),
        byzantine=0,
        crashed=f,
        faults="drop,delay,partition",
        seeds=3,
        start_seed=30_000,
    )
    summary = sweep(config)
    assert_clean(summary)
    assert len(summary.liveness_ms) == 3
    # a crashed leader costs exactly the round it leads (votes on timeouts save the one before)
    assert summary.max_round_gap <= f + 1


SEEDED = draw(7, 7, 2, FaultSpec.parse("all"))


def run_with_digest(scenario: Scenario) -> tuple[RunResult, str]:
    """Run ``scenario``; SHA-256 over every instance's whole commit log.

    Per instance (by label, so twins count separately), in commit order: height,
    block hash, the encoded block and its certificate, each length-prefixed.
    """
    simulation = Simulation(scenario)
    result = simulation.run()
    digest = hashlib.sha256()

    def chunk(data: bytes) -> None:
        digest.update(len(data).to_bytes(4, "big") + data)

    for label in sorted(simulation.disks):
        log = simulation.disks[label].log
        chunk(f"{label}/{len(log)}".encode())
        for commit in log:
            chunk(commit.block.height.to_bytes(8, "big") + commit.block_hash)
            chunk(codec.encode(commit.block))
            chunk(codec.encode(commit.certificate))
    return result, digest.hexdigest()


def test_a_run_is_a_function_of_its_seed() -> None:
    a, digest_a = run_with_digest(SEEDED)
    b, digest_b = run_with_digest(SEEDED)
    assert a.ok and a.height >= SEEDED.target_commits  # the logs hold real work
    assert digest_b == digest_a  # every commit of every node, byte for byte
    assert (b.height, b.events, b.rounds_timed_out, b.liveness_ms) == (
        a.height,
        a.events,
        a.rounds_timed_out,
        a.liveness_ms,
    )
    _, other = run_with_digest(draw(8, 7, 2, FaultSpec.parse("all")))
    assert other != digest_a  # the digest sees what the seed changes


def test_a_run_replays_in_a_fresh_process_with_another_hash_seed() -> None:
    """``seqnet sim --start-seed`` replays a failing seed in a new process: same commits."""
    _, here = run_with_digest(SEEDED)
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    code = "from tests.test_sim import SEEDED, run_with_digest; print(run_with_digest(SEEDED)[1])"
    replay = subprocess.run(
        [sys.executable, "-c", code],
        cwd=pathlib.Path(__file__).parent.parent,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        check=True,
    )
    assert replay.stdout.strip() == here


def test_checker_catches_a_broken_vote_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation check: with the vote rule disabled, twin leaders cause double votes."""
    monkeypatch.setattr("ordering.core.is_safe_to_vote", lambda *args: True)
    monkeypatch.setattr("ordering.core.ConsensusCore._is_first_proposal", lambda *args: True)
    results = [simulate(draw(seed, 4, 1, FaultSpec.parse("twins"))) for seed in range(3)]
    assert any("double vote" in v for r in results for v in r.violations)


def test_checker_catches_signing_without_persisting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation check: if safety state never reaches disk, a restarted node votes again."""
    monkeypatch.setattr("ordering.core.ConsensusCore._persist", lambda self, voted=None: None)
    results: list[RunResult] = []
    for seed in range(40):
        results.append(simulate(draw(seed, 4, 1, FaultSpec.parse("crash,partition,twins"))))
        if any("double vote" in v for v in results[-1].violations):
            break
    assert any("double vote" in v for r in results for v in r.violations)


def test_more_than_f_crashed_is_reported_as_a_liveness_violation() -> None:
    summary = sweep(SweepConfig(nodes=(4,), byzantine=0, crashed=2, faults="none", seeds=1))
    assert summary.failures and "liveness" in summary.failures[0].violations[0]
