"""``seqnet sim``: seeded adversarial simulations of consensus, fair ordering and the DKG."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from ordering.fair.policies import DEFAULT_POLICY
from sequencer_net.base.committee import max_faulty
from sequencer_net.cli.args import CliError, byzantine, node_sizes, positive


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="run seeded adversarial simulations of the consensus core",
        description=(
            "Run K seeded simulations of n validators with virtual time: network faults "
            "before GST, Byzantine nodes, crashes and restarts. Checks agreement, no honest "
            "double vote and liveness after GST; exits 1 and prints the failing seed on any "
            "violation."
        ),
        epilog=(
            "faults: drop, dup, delay, partition, crash, restart-all (network) and equivocate, "
            "double-vote, "
            "withhold, bad-signature, replay, garbage, stale-timeout, twins (Byzantine "
            "behaviours, one drawn per Byzantine node); 'all' or 'none'."
        ),
    )
    p.add_argument(
        "--nodes",
        type=node_sizes,
        default=(4, 7, 10),
        metavar="N[,N...]",
        help="committee sizes, used in turn (default: 4,7,10)",
    )
    p.add_argument(
        "--byzantine",
        type=byzantine,
        default=None,
        metavar="B",
        help="Byzantine nodes per run, or 'f' for the most tolerated (default: f)",
    )
    p.add_argument(
        "--crashed",
        type=int,
        default=0,
        metavar="C",
        help="honest nodes that crash before GST and never return (default: 0)",
    )
    p.add_argument(
        "--faults",
        default="all",
        metavar="SPEC",
        help="comma list of faults and attacks (default: all)",
    )
    p.add_argument("--seeds", type=positive, default=100, metavar="K", help="runs (default: 100)")
    p.add_argument("--start-seed", type=int, default=0, metavar="S", help="first seed (default: 0)")
    p.add_argument(
        "--jobs",
        type=positive,
        default=os.cpu_count() or 1,
        metavar="J",
        help="worker processes (default: all cores)",
    )
    p.add_argument("--gst-ms", type=positive, default=3000, help="virtual time of GST")
    p.add_argument(
        "--liveness-ms",
        type=positive,
        default=60_000,
        help="after GST, every honest node must commit --target new blocks within this",
    )
    p.add_argument("--target", type=positive, default=20, help="new commits required after GST")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--protocol",
        choices=["consensus", "dkg"],
        default="consensus",
        help="what to simulate: the consensus core (default) or the DKG with f Byzantine dealers",
    )
    p.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        help="ordering policy in consensus runs: median-timestamp (default), arrival, "
        "batch-order-fair (needs n >= 4f+1)",
    )
    p.add_argument(
        "--fairness",
        action="store_true",
        help="compare ordering policies against a front-running and a censoring leader "
        "instead (one Byzantine validator among --nodes, no network faults)",
    )
    p.add_argument(
        "--policies",
        default="arrival,median-timestamp",
        metavar="P[,P...]",
        help="policies to compare with --fairness (default: arrival,median-timestamp)",
    )
    p.add_argument(
        "--svg", type=pathlib.Path, default=None, help="with --fairness: also draw the results here"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ops.sim.report import render
    from ops.sim.runner import SweepConfig, sweep
    from ops.sim.scenario import FaultSpec, SpecError
    from sequencer_net.progress import Progress

    if args.protocol == "dkg":
        return _cmd_sim_dkg(args)
    if args.fairness:
        return _cmd_sim_fairness(args)
    try:
        FaultSpec.parse(args.faults)
    except SpecError as exc:
        raise CliError(str(exc)) from None
    config = SweepConfig(
        nodes=args.nodes,
        byzantine=args.byzantine,
        crashed=args.crashed,
        faults=args.faults,
        seeds=args.seeds,
        start_seed=args.start_seed,
        gst_ms=args.gst_ms,
        liveness_bound_ms=args.liveness_ms,
        target_commits=args.target,
        jobs=args.jobs,
        policy=args.policy,
    )
    for n in config.nodes:
        faulty = config.byzantine_for(n) + config.crashed
        if faulty > max_faulty(n):
            print(
                f"note: n={n} with {faulty} faulty nodes is beyond f={max_faulty(n)}: "
                "violations are expected",
                file=sys.stderr,
            )
        if config.crashed >= n - config.byzantine_for(n):
            raise CliError(f"n={n}: --crashed {config.crashed} leaves no honest node running")
    bar = Progress(config.seeds, "sim")
    failed = 0

    def on_result(result: object) -> None:
        nonlocal failed
        failed += 0 if getattr(result, "ok", True) else 1
        bar.advance(f"violations {failed}")

    summary = sweep(config, on_result)
    bar.close()
    if args.json:
        print(json.dumps(_summary_json(summary), indent=2))
    else:
        print(render(summary, config))
    return 1 if summary.failures else 0


def _cmd_sim_fairness(args: argparse.Namespace) -> int:
    from ops.sim.fairness import FairnessConfig, render, sweep_fairness
    from ordering.fair.policies import make_policy
    from sequencer_net.progress import Progress

    policies = tuple(p.strip() for p in args.policies.split(",") if p.strip())
    n = args.nodes[0]
    for policy in policies:
        try:
            make_policy(policy, n, max_faulty(n))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    config = FairnessConfig(
        policies=policies, nodes=n, seeds=args.seeds, start_seed=args.start_seed, jobs=args.jobs
    )
    bar = Progress(len(config.scenarios()), "fairness")
    rows = sweep_fairness(config, lambda _: bar.advance())
    bar.close()
    print(render(rows, config))
    if args.svg is not None:
        from ops.sim.plot import bar_chart

        bars = [
            (f"{r.attacker}, {r.policy}", r.policy, r.led_rate)
            for r in rows
            if r.attacker != "censor"
        ]
        title = f"Front-running success of a Byzantine leader (n={n}, {config.seeds} runs each)"
        args.svg.write_text(bar_chart(title, bars))
    return 1 if any(r.violations for r in rows) else 0


def _cmd_sim_dkg(args: argparse.Namespace) -> int:
    from ops.sim.dkg import sweep_dkg
    from sequencer_net.progress import Progress

    bar = Progress(args.seeds, "dkg")
    summary = sweep_dkg(args.nodes, args.seeds, args.start_seed, lambda run: bar.advance())
    bar.close()
    behaviours = ", ".join(f"{b} {c}" for b, c in sorted(summary.behaviours.items()))
    print(f"runs              {summary.runs} DKGs, f Byzantine dealers each")
    print(f"byzantine dealers {behaviours}")
    print(f"disqualified      {summary.disqualified} dealers")
    print(f"violations        {len(summary.failures)} failing runs")
    for run in summary.failures[:10]:
        print(f"FAILED seed {run.seed} n={run.n} byzantine={run.byzantine}: {run.violations[0]}")
        print(
            f"  replay: seqnet sim --protocol dkg --nodes {run.n} --start-seed {run.seed} --seeds 1"
        )
    return 1 if summary.failures else 0


def _summary_json(summary: object) -> dict[str, object]:
    from ops.sim.runner import Summary

    assert isinstance(summary, Summary)
    q = summary.liveness_quantiles()
    return {
        "runs": summary.runs,
        "by_size": dict(summary.by_size),
        "commits": summary.commits,
        "rounds_timed_out": summary.rounds_timed_out,
        "events": summary.events,
        "liveness_ms": None if q is None else {"p50": q[0], "p99": q[1], "max": q[2]},
        "max_round_gap": summary.max_round_gap,
        "rejected": dict(summary.rejected),
        "byzantine_nodes": dict(summary.attacks),
        "failures": [
            {"seed": r.scenario.seed, "n": r.scenario.n, "violations": r.violations}
            for r in summary.failures
        ],
    }
