"""``seqnet chaos run | list``: break a local cluster on purpose and judge what it did."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sequencer_net.cli.args import DEFAULT_CLUSTER_DIR, CliError, positive

if TYPE_CHECKING:
    from ops.chaos.runner import Outcome
    from ops.chaos.scenario import Scenario

VIOLATION = 1  # exit status when a checker found a violation; a setup error is 2 (CliError)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chaos",
        help="kill, pause, partition, slow a local cluster's nodes or make some Byzantine, "
        "under load: safe, live, nothing lost?",
        description=(
            "Run fault scenarios against real validator processes on this machine, under "
            "load, watched from outside (status, batches, /metrics, a verifying rollup "
            "subscription), and judge the recorded history: agreement, no loss, no "
            "duplicates, liveness, metrics, and for Byzantine faults censorship and blame. "
            "Partitions, delay/loss and Byzantine faults need a test network (`seqnet "
            "cluster up --test-network`; --cluster makes one). See docs/chaos.md."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="run scenarios against a cluster; exit 1 on any violation",
        description=(
            "For each SCENARIO: wait until every node commits, start a verifying rollup "
            "follower and a steady load (failing over from nodes that do not answer), apply "
            "and heal each fault at its time, drain, then check the history and print each "
            "checker's verdict with its evidence and the verdict table; write an HTML report "
            "with a timeline picture per scenario. Faults are healed whatever happens, so an "
            "interrupted run leaves the cluster whole."
        ),
        epilog=(
            "exit status: 0 every scenario passed; 1 a checker found a violation; 2 the run "
            "could not start or apply a fault (a bad scenario file, no cluster, a node not "
            "running). --short: every time is scaled by 20/duration_s when the duration is "
            "longer than 20 s (each fault window kept at least 3 s) and the load is capped "
            "at 20 tx/s; nodes, transaction size and the liveness bound stay."
        ),
    )
    run.add_argument(
        "scenarios", nargs="+", metavar="SCENARIO",
        help="a scenario file (.toml), or the name of a bundled one (`seqnet chaos list`)",
    )  # fmt: skip
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--dir", type=Path, default=None, metavar="DIR",
        help="the cluster started by `seqnet cluster up --detach --dir DIR` (default "
        f"{DEFAULT_CLUSTER_DIR}; add --test-network there for partitions, delay/loss and "
        "Byzantine faults); killed nodes are restarted detached, like the others",
    )  # fmt: skip
    where.add_argument(
        "--cluster", action="store_true",
        help="start a fresh test-network cluster per scenario (temp dir, free ports; a "
        "scenario's broken build too) and stop it after",
    )  # fmt: skip
    run.add_argument(
        "--report", type=Path, default=None, metavar="DIR",
        help="where to write index.html, an SVG and JSON per scenario (default "
        "DIR/chaos-report with --dir, ./chaos-report with --cluster)",
    )  # fmt: skip
    run.add_argument("--short", action="store_true", help="scaled down for CI (see below)")
    run.add_argument(
        "--base-port", type=positive, default=None, metavar="PORT",
        help="with --cluster: the first libp2p port, 10 higher for each further scenario "
        "(default: a free range)",
    )  # fmt: skip
    run.set_defaults(func=_cmd_run)
    listing = actions.add_parser(
        "list",
        help="the bundled scenarios, with descriptions",
        description="Print each scenario shipped with seqnet: name, faults, description.",
    )
    listing.set_defaults(func=_cmd_list)


def _cmd_list(args: argparse.Namespace) -> int:
    from ops.chaos import scenario

    for name in bundled_names():
        try:
            s = scenario.load(bundled_path(name))
        except scenario.ScenarioError as exc:
            raise CliError(str(exc)) from None
        faults = "; ".join(f.describe() for f in s.faults) or "no faults"
        if s.broken is not None:
            faults += f"; node {s.broken.node} started from a broken build ({s.broken.build})"
        expect = "stays live" if s.expect_live else "stalls, then resumes"
        if not s.expect_safe:
            expect += "; beyond the fault model: expected to FAIL"
        print(f"{s.name}\n  {s.nodes} nodes, {s.duration_s:g} s: {faults}; {expect}")
        print(f"  {s.description}")
    return 0


def bundled_names() -> list[str]:
    from importlib import resources

    files = resources.files("ops.scenarios").iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def bundled_path(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("ops.scenarios").joinpath(f"{name}.toml")))


def read_scenarios(names: list[str], short: bool) -> list[Scenario]:
    """Each SCENARIO as a file or a bundled name; all checked before anything runs."""
    from ops.chaos import scenario

    out = []
    for name in names:
        path = Path(name)
        if not path.exists() and not name.endswith(".toml"):
            if name not in bundled_names():
                known = ", ".join(bundled_names())
                raise CliError(f"no scenario file {name!r} and no bundled one (bundled: {known})")
            path = bundled_path(name)
        try:
            s = scenario.load(path)
        except scenario.ScenarioError as exc:
            raise CliError(str(exc)) from None
        out.append(s.short() if short else s)
    if len({s.name for s in out}) != len(out):
        raise CliError("two scenarios share a name: their reports would overwrite each other")
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from ops.chaos import report

    scenarios = read_scenarios(args.scenarios, args.short)
    if args.base_port is not None and not args.cluster:
        raise CliError("--base-port is for --cluster (a cluster of --dir has its ports)")
    directory = args.dir or DEFAULT_CLUSTER_DIR
    default_report = Path("chaos-report") if args.cluster else directory / "chaos-report"
    report_dir = args.report or default_report
    previous = signal.signal(signal.SIGTERM, _interrupt)  # heal and stop as on Ctrl-C
    outcomes = []
    try:
        offset = 0
        for s in scenarios:
            if args.cluster:
                base = None if args.base_port is None else args.base_port + offset
                offset += max(10, s.nodes)
                outcome = _run_fresh(s, base)
            else:
                outcome = _run_on(s, directory)
            outcomes.append(outcome)
            for line in report.verdict_lines(outcome):
                print(line, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print()
    for line in report.table_lines(outcomes):
        print(line)
    page = report.write(report_dir, outcomes)
    print(f"\nreport: {page}")
    failed = [o.scenario.name for o in outcomes if not o.ok]
    verdict = f"FAIL ({', '.join(failed)})" if failed else "ok: safe, live, nothing lost"
    print(f"RESULT: {verdict}")
    return VIOLATION if failed else 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run_on(s: Scenario, directory: Path) -> Outcome:
    """On a cluster someone started with ``cluster up --detach``."""
    from ops.chaos import faults, runner
    from sequencer_net.node.network import NetworkFilesError

    if not (directory / "genesis.json").exists():
        test = " --test-network" if s.needs_admin else ""
        raise CliError(
            f"no cluster in {directory}: start one with `seqnet cluster up{test} --detach "
            f"--dir {directory}`, or use --cluster"
        )
    if s.broken is not None:
        raise CliError(
            f"{s.name}: node {s.broken.node} must start from a broken build "
            f"({s.broken.build}), which only a cluster of the run's own can: use --cluster"
        )
    try:
        nodes = faults.Nodes(directory, s.nodes, detach=True)
        return runner.run(s, directory, nodes, _say)
    except (runner.SetupError, faults.FaultError, NetworkFilesError) as exc:
        raise CliError(f"{s.name}: {exc}") from None


def _run_fresh(s: Scenario, base_port: int | None) -> Outcome:
    """On a fresh test-network cluster in a temp dir, stopped after (logs kept, databases
    removed); a broken build's line appended to its node's config before the start."""
    import tempfile

    from ops import health, processes
    from ops.chaos import faults, runner
    from sequencer_net.node.network import NetworkFilesError, write_network

    directory = Path(tempfile.mkdtemp(prefix=f"seqnet-chaos-{s.name}-"))
    nodes = None
    procs = []
    try:
        base = base_port or processes.free_base_port(s.nodes)
        write_network(directory, s.nodes, base_port=base, test_network=True)
        if s.broken is not None:
            config = directory / f"node-{s.broken.node}.toml"
            config.write_text(config.read_text() + s.broken.config_line())
            _say(f"{s.name}: node {s.broken.node} runs a broken build ({s.broken.build})")
        _say(f"{s.name}: starting {s.nodes} nodes in {directory} (base port {base})")
        procs = processes.start(directory, "warning")
        health.wait_until_committing(directory, procs, runner.READY_S)
        nodes = faults.Nodes(directory, s.nodes, detach=False, children=procs)
        return runner.run(s, directory, nodes, _say)
    except (runner.SetupError, faults.FaultError, processes.ClusterError, NetworkFilesError) as exc:
        raise CliError(f"{s.name}: {exc}") from None
    finally:
        processes.stop(directory)  # every node of the directory, restarted ones too
        for child in [*procs, *(nodes.children.values() if nodes else [])]:
            if child.poll() is None:
                child.wait(timeout=processes.STOP_GRACE_S)
        for path in directory.glob("node-*.db*"):
            path.unlink(missing_ok=True)
        _say(f"{s.name}: stopped the cluster; logs in {directory}")


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt
