"""``seqnet chaos`` with the faults that go through a test network's admin endpoint, for real.

Two runs of real node processes, kept short (the whole suite must stay quick on two
cores): the faults of the bundled ``partition-leader``, ``withhold-shares`` and
``censoring-leader`` scenarios, as those files write them, one
after another on one cluster, must pass every checker; and ``broken-build`` (node 3
serves every batch reversed) must fail, with the agreement checker naming node 3 and
the heights while the chain itself agrees. ``loss-delay`` runs by command only: under
20 % loss a lost vote waits for the next (backed-off) timeout, so its commit gaps are
too long and too variable for a short run in CI (docs/chaos.md).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from ops.chaos import scenario
from ops.commands.chaos import bundled_path

BASE_PORT = 29600  # and +1000, +2000, +3000 (admin): no other test uses 29600-29620 there
BUNDLED = ("partition-leader", "withhold-shares", "censoring-leader")
WINDOW_S, GAP_S = 3.0, 1.0  # each fault 3 s, 1 s apart, the first at 2 s
BOUND_S = 10  # liveness bound (the bundled one): the load runs 10 s past the last heal


def chaos(*args: str, tmp: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``seqnet chaos run ...`` with its clusters' directories under ``tmp``."""
    return subprocess.run(
        [sys.executable, "-m", "sequencer_net.cli", "chaos", "run", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


def fault_table(fault: scenario.Fault, at: float) -> str:
    """A bundled scenario's fault as a ``[[faults]]`` table, moved to ``at``."""
    lines = ["[[faults]]", f'kind = "{fault.kind.value}"', f"at_s = {at}",
             f"until_s = {at + WINDOW_S}"]  # fmt: skip
    if fault.groups:
        lines.append(f"groups = {json.dumps([list(g) for g in fault.groups])}")
    if fault.targets:
        lines.append(f"targets = {json.dumps(list(fault.targets))}")
    if fault.loss:
        lines.append(f"loss = {fault.loss}")
    if fault.delay_ms:
        lines.append(f"delay_ms = {fault.delay_ms}")
    if fault.protocol:
        lines.append(f'protocol = "{fault.protocol}"')
    if fault.behaviour:
        lines.append(f'behaviour = "{fault.behaviour}"')
    if fault.namespace:
        lines.append(f'namespace = "{fault.namespace}"')
    return "\n".join(lines) + "\n"


def combined(directory: pathlib.Path) -> pathlib.Path:
    """One scenario holding each bundled scenario's fault in turn."""
    tables = []
    for k, name in enumerate(BUNDLED):
        (fault,) = scenario.load(bundled_path(name)).faults
        tables.append(fault_table(fault, 2.0 + k * (WINDOW_S + GAP_S)))
    last = 2.0 + len(BUNDLED) * (WINDOW_S + GAP_S) - GAP_S
    path = directory / "bundled-faults.toml"
    path.write_text(
        'name = "bundled-faults"\n'
        f'description = "the faults of {", ".join(BUNDLED)}, one after another"\n'
        f"duration_s = {last}\nliveness_bound_s = {BOUND_S}\n"
        "[load]\nrate = 20\n[expect]\nlive = true\n" + "\n".join(tables)
    )
    return path


def verdicts(out: pathlib.Path, name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    summary = json.loads((out / f"{name}.json").read_text())
    return summary, {v["checker"]: v for v in summary["verdicts"]}


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, pathlib.Path]:
    here = tmp_path_factory.mktemp("chaos-faults")
    out = here / "report"
    args = (str(combined(here)), "--cluster", "--base-port", str(BASE_PORT), "--report", str(out))
    return chaos(*args, tmp=here), out


def test_partition_withheld_shares_and_censorship_leave_the_cluster_safe_and_live(
    faults_run: tuple[Any, pathlib.Path],
) -> None:
    run, out = faults_run
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert (
        "bundled-faults: PASS: safe, live, nothing lost, metrics agree, censored delivered, "
        "culprits named" in run.stdout
    )
    told = run.stderr
    assert "fault 1: cut off node " in told and "(sides " in told
    assert "fault 2: made Byzantine node 3 (withhold_shares)" in told
    assert "fault 3: made Byzantine node 3 (censor rollup-b)" in told
    assert "healed fault 3: honest again: node 3" in told
    summary, by = verdicts(out, "bundled-faults")
    assert summary["ok"] and summary["safe"] and summary["live"] and summary["nothing_lost"]
    windows = by["liveness"]["figures"]["windows"]
    assert [w["kind"] for w in windows] == ["partition", "byzantine", "byzantine"]
    cut = windows[0]
    assert len(cut["nodes"]) == 1 and cut["down"] == 1 and cut["expected"] == "live"
    assert cut["detail"].startswith(f"sides {cut['nodes'][0]} | ")
    for w in windows:
        assert w["max_commit_gap_s"] <= BOUND_S and w["commit_recovery_s"] <= BOUND_S
        assert w["rejoin_s"] is not None
    assert by["no loss"]["figures"]["acknowledged"] > 200
    assert by["agreement"]["figures"]["heights"] > 20
    (censored,) = by["censorship"]["figures"]["windows"]
    assert censored["namespace"] == "rollup-b" and censored["acknowledged"] > 0
    assert censored["within_bound"] == censored["acknowledged"]
    withheld, censor = by["blame"]["figures"]["checks"]
    assert withheld["behaviour"] == "withhold_shares" and withheld["judged_by"]
    assert censor["round_failures"]["3"] > 0


def test_a_broken_build_fails_the_run_and_agreement_names_the_node_and_the_heights(
    tmp_path: pathlib.Path,
) -> None:
    out = tmp_path / "report"
    # reversal shows only in batches of two or more: 200 tx/s puts ~10 in each 50 ms batch
    # of the load (at --short's 20 tx/s most heights hold one transaction or none)
    text = bundled_path("broken-build").read_text()
    path = tmp_path / "broken-build.toml"
    path.write_text(
        text.replace("duration_s = 12", "duration_s = 8").replace("rate = 20", "rate = 200")
    )
    args = (str(path), "--cluster", "--base-port", str(BASE_PORT + 10))
    run = chaos(*args, "--report", str(out), tmp=tmp_path)
    assert run.returncode == 1, run.stdout[-6000:] + run.stderr[-3000:]
    assert "broken-build: FAIL: NOT SAFE, live, nothing lost, metrics agree" in run.stdout
    assert "RESULT: FAIL (broken-build)" in run.stdout
    summary, by = verdicts(out, "broken-build")
    agreement = by["agreement"]
    assert not agreement["ok"] and not summary["safe"]
    assert "batches of their own: node 3 at " in agreement["summary"]
    assert set(agreement["figures"]["odd_nodes"]) == {"3"}
    first = agreement["evidence"][0]
    assert first.startswith("batches differ at height ")
    assert "node 0,1,2: " in first and "; node 3: " in first and "(reversed: " in first
    assert "the chain agrees: /v1/blocks/" in first and "on node 0,1,2,3" in first
    assert all(by[name]["ok"] for name in ("no loss", "no duplicates", "liveness", "metrics"))
