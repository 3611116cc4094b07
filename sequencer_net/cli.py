"""The ``seqnet`` command line: one subcommand per operator task.

Every failure is one clear line on stderr and a non-zero exit; long commands
show progress on stderr and print their result on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ordering.fair.policies import DEFAULT_POLICY
from sequencer_net import __version__
from sequencer_net.base.committee import max_faulty
from sequencer_net.node import logs

if TYPE_CHECKING:
    from sequencer_net.node.genesis import Genesis


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _int_list(text: str, lo: int, hi: int, what: str, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} like {example}, got {text!r}") from None
    if not values or any(v < lo or v > hi for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be between {lo} and {hi}")
    return values


def _node_sizes(text: str) -> tuple[int, ...]:
    return _int_list(text, 1, 64, "committee sizes", "4,7,10")


def _rates(text: str) -> tuple[int, ...]:
    return _int_list(text, 1, 1_000_000, "rates", "25,50")


def _whole(text: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}")
    return value


def _byzantine(text: str) -> int | None:
    """A count of Byzantine nodes, or 'f' (None): the most each committee tolerates."""
    return None if text == "f" else _whole(text, minimum=0)


def _positive(text: str) -> int:
    return _whole(text, minimum=1)


def _add_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        type=_node_sizes,
        default=(4, 7, 10),
        metavar="N[,N...]",
        help="committee sizes, used in turn (default: 4,7,10)",
    )
    p.add_argument(
        "--byzantine",
        type=_byzantine,
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
    p.add_argument("--seeds", type=_positive, default=100, metavar="K", help="runs (default: 100)")
    p.add_argument("--start-seed", type=int, default=0, metavar="S", help="first seed (default: 0)")
    p.add_argument(
        "--jobs",
        type=_positive,
        default=os.cpu_count() or 1,
        metavar="J",
        help="worker processes (default: all cores)",
    )
    p.add_argument("--gst-ms", type=_positive, default=3000, help="virtual time of GST")
    p.add_argument(
        "--liveness-ms",
        type=_positive,
        default=60_000,
        help="after GST, every honest node must commit --target new blocks within this",
    )
    p.add_argument("--target", type=_positive, default=20, help="new commits required after GST")
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
    p.set_defaults(func=_cmd_sim)


def _cmd_sim(args: argparse.Namespace) -> int:
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
        "view_changes": summary.view_changes,
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


def _add_keygen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keygen",
        help="create genesis and validator keys for a local network (trusted dealer)",
        description=(
            "Write DIR/genesis.json and DIR/node-<i>.key.json (mode 0600): an ed25519 key per "
            "validator (vote key and libp2p identity) and a threshold key share from a "
            "trusted dealer. For networks without a trusted party, use the DKG."
        ),
    )
    p.add_argument("--nodes", type=_positive, required=True, metavar="N", help="validators")
    p.add_argument(
        "--dir",
        type=pathlib.Path,
        default=pathlib.Path("seqnet-net"),
        help="output directory (default: ./seqnet-net)",
    )
    p.add_argument("--chain-id", default="seqnet-local", help="chain id (default: seqnet-local)")
    p.add_argument(
        "--namespaces",
        default="rollup-a,rollup-b",
        metavar="NS[,NS...]",
        help="registered rollup namespaces (default: rollup-a,rollup-b)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address validators listen on")
    p.add_argument(
        "--base-port",
        type=_positive,
        default=7100,
        help="validator i listens on base-port + i, its HTTP API on base-port + 1000 + i, "
        "its /metrics on base-port + 2000 + i (default: 7100)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing network: genesis, keys, configs, and its databases are deleted",
    )
    p.set_defaults(func=_cmd_keygen)


def _cmd_keygen(args: argparse.Namespace) -> int:
    namespaces = tuple(ns.strip() for ns in args.namespaces.split(",") if ns.strip())
    genesis = _write_network(
        args.dir,
        args.nodes,
        chain_id=args.chain_id,
        namespaces=namespaces,
        host=args.host,
        base_port=args.base_port,
        force=args.force,
    )
    t = genesis.threshold_key.threshold
    print(
        f"wrote {args.dir}/genesis.json: chain {genesis.chain_id}, n={genesis.n}, "
        f"f={genesis.f}, threshold t={t}, namespaces {', '.join(namespaces)}"
    )
    print(f"wrote {genesis.n} key files {args.dir}/node-<i>.key.json (mode 0600)")
    print(f"wrote {genesis.n} configs {args.dir}/node-<i>.toml: run one with seqnet node --config")
    return 0


def _write_network(directory: pathlib.Path, nodes: int, **options: Any) -> Genesis:
    """``network.write_network``, its failure as one CLI line."""
    from sequencer_net.node.network import NetworkFilesError, write_network

    try:
        return write_network(directory, nodes, **options)
    except NetworkFilesError as exc:
        raise CliError(str(exc)) from None


def _add_encrypt(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "encrypt",
        help="encrypt a transaction for a network's threshold key",
        description=(
            "Encrypt DATA (or standard input with '-') for the committee of GENESIS, bound to "
            "a rollup namespace, and print the ciphertext (canonical CBOR) as hex."
        ),
    )
    p.add_argument("--genesis", type=pathlib.Path, required=True, help="path to genesis.json")
    p.add_argument("--namespace", required=True, help="rollup namespace registered in genesis")
    p.add_argument("--out", type=pathlib.Path, default=None, help="write raw CBOR here instead")
    p.add_argument("data", help="the transaction bytes (UTF-8), or - to read standard input")
    p.set_defaults(func=_cmd_encrypt)


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from mev import kem
    from sequencer_net.base import codec
    from sequencer_net.node import genesis as gen

    try:
        genesis = gen.load_genesis(args.genesis)
    except gen.GenesisError as exc:
        raise CliError(str(exc)) from None
    if args.namespace not in genesis.namespaces:
        raise CliError(
            f"namespace {args.namespace!r} is not registered in {args.genesis} "
            f"(registered: {', '.join(genesis.namespaces)})"
        )
    payload = sys.stdin.buffer.read() if args.data == "-" else args.data.encode()
    try:
        ct = kem.encrypt(
            genesis.threshold_key, genesis.chain_id, args.namespace, payload, os.urandom
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    data = codec.encode(ct)
    if args.out is not None:
        args.out.write_bytes(data)
        print(f"wrote {len(data)} bytes to {args.out} (digest {kem.digest(ct).hex()})")
    else:
        print(data.hex())
    return 0


def _add_node(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "node",
        help="run one validator",
        description="Run one validator from a TOML config (genesis, key file, database); "
        "stops cleanly on SIGINT or SIGTERM. `seqnet keygen` writes one config per validator.",
    )
    p.add_argument("--config", type=pathlib.Path, required=True, help="path to node-<i>.toml")
    p.add_argument(
        "--new-node",
        action="store_true",
        help="this validator never ran: start even though its database is missing or empty "
        "while peers have committed (without it, such a start is refused: the safety state "
        "that prevents a double vote may have been lost)",
    )
    p.set_defaults(func=_cmd_node)


def _cmd_node(args: argparse.Namespace) -> int:
    import trio

    from sequencer_net.node.config import ConfigError, NodeConfig
    from sequencer_net.node.genesis import GenesisError
    from sequencer_net.node.run import run_node
    from sequencer_net.node.storage import StorageError

    expected = (ConfigError, GenesisError, StorageError, ValueError, OSError)
    try:
        config = NodeConfig.load(args.config)
        trio.run(run_node, config, args.new_node)
    except expected as exc:
        raise CliError(str(exc)) from None
    except BaseExceptionGroup as group:  # raised inside one of the node's tasks
        first = _first_leaf(group)
        if isinstance(first, expected):
            raise CliError(str(first)) from None
        raise
    return 0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    inner = group.exceptions[0]
    return _first_leaf(inner) if isinstance(inner, BaseExceptionGroup) else inner


DEFAULT_CLUSTER_DIR = pathlib.Path(".seqnet/cluster")


def _add_cluster(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cluster",
        help="run a local multi-node cluster on 127.0.0.1",
        description="Start, inspect and stop N validator processes on this machine.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up",
        help="start N validators and wait until all commit (Ctrl-C stops them)",
        description=(
            "Write a genesis and keys into DIR (unless it has them), start one `seqnet node` "
            "process per validator, show progress until every node is connected and "
            "committing, print the endpoints, and keep running until Ctrl-C (or SIGTERM), "
            "then stop them all cleanly; they get SIGTERM too if this process is killed. "
            "With --detach, return once they commit, leaving them to `cluster down`."
        ),
    )
    up.add_argument("--nodes", type=_positive, default=4, metavar="N", help="validators (4)")
    up.add_argument("--dir", type=pathlib.Path, default=DEFAULT_CLUSTER_DIR, help="state dir")
    up.add_argument("--base-port", type=_positive, default=7100, help="first libp2p port (7100)")
    up.add_argument("--fresh", action="store_true", help="delete DIR's keys and data first")
    up.add_argument("--detach", action="store_true", help="leave the nodes running and return")
    up.add_argument("--timeout", type=_positive, default=60, help="seconds to wait for commits")
    up.set_defaults(func=_cmd_cluster_up)
    for add in (_add_cluster_status, _add_cluster_down):
        q = add(actions)
        q.add_argument("--dir", type=pathlib.Path, default=DEFAULT_CLUSTER_DIR, help="state dir")


def _add_cluster_status(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    status = actions.add_parser(
        "status",
        help="each node's height, decryption lag, view, peers; exit 0 only if all are healthy",
        description="Ask every node of DIR for its status twice, --window apart; exit 0 only "
        "if each answers as itself (chain id, genesis, validator index, a process running its "
        "config), commits, and decrypts within --max-lag blocks of its committed height, "
        "advancing.",
    )
    status.add_argument(
        "--max-lag", type=_positive, default=None, metavar="BLOCKS",
        help="fail a node whose decrypted height is more blocks behind its committed one "
        "(default 50)",
    )  # fmt: skip
    status.add_argument(
        "--window", type=_positive, default=None, metavar="SECONDS",
        help="fail a node behind on decryption that decrypts nothing for this long (default 1)",
    )  # fmt: skip
    status.set_defaults(func=_cmd_status)
    return status


def _add_cluster_down(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    down = actions.add_parser(
        "down",
        help="stop every node process of DIR, however it was started",
        description="Stop every process running `node --config DIR/node-<i>.toml` (found by "
        "command line, so nodes restarted by hand too): SIGTERM, then SIGKILL after 15 s.",
    )
    down.set_defaults(func=_cmd_cluster_down)
    return down


def _cmd_cluster_up(args: argparse.Namespace) -> int:
    import shutil
    import signal

    from ops import cluster

    if args.fresh and args.dir.exists():
        shutil.rmtree(args.dir)
    if not (args.dir / "genesis.json").exists():
        genesis = _write_network(args.dir, args.nodes, base_port=args.base_port)
        print(f"wrote genesis and keys for {genesis.n} validators into {args.dir}")
    elif len(list(args.dir.glob("node-*.toml"))) != args.nodes:
        raise CliError(f"{args.dir} holds another cluster size: add --fresh to replace it")
    try:
        procs = cluster.start(args.dir, args.log_level, detach=args.detach)
    except cluster.ClusterError as exc:
        raise CliError(str(exc)) from None
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(1))
    try:
        _wait_for_cluster(args, procs)
        for line in cluster.status_lines(args.dir)[1]:
            print(line)
        if args.detach:
            print(f"running; `seqnet cluster status --dir {args.dir}`, then `cluster down`")
            return 0
        here = "" if args.dir == DEFAULT_CLUSTER_DIR else f" --dir {args.dir}"
        api = cluster.members(args.dir)[0].api
        print(
            f"{args.nodes} validators committing; Ctrl-C stops them. In another terminal:\n"
            f"  seqnet submit{here} --rollup rollup-a 'hello'\n"
            f"  seqnet cluster status{here}\n"
            f"  curl -s http://{api}/v1/status",
            flush=True,
        )
        while not stop_requested and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        if not stop_requested:
            raise CliError("a node exited: see " + str(args.dir / "node-<i>.log"))
    except (cluster.ClusterError, CliError) as exc:
        cluster.stop_procs(procs)
        (args.dir / cluster.STATE_FILE).unlink(missing_ok=True)
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        stop_requested.append(2)  # Ctrl-C reached foreground nodes too: they are stopping
    try:
        signalled = 2 in stop_requested and not args.detach  # detached: their own session
        codes = cluster.stop_procs(procs, signalled=signalled)
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        codes = cluster.stop_procs(procs, timeout_s=0)
    finally:
        (args.dir / cluster.STATE_FILE).unlink(missing_ok=True)
    print(f"stopped {len(procs)} validators (exit codes {codes})")
    return 0 if all(c == 0 for c in codes) else 1


def _wait_for_cluster(args: argparse.Namespace, procs: list) -> None:  # type: ignore[type-arg]
    from ops import cluster
    from sequencer_net.progress import Progress

    bar = Progress(args.nodes, "nodes committing")

    def show(ready: int, total: int) -> None:
        if ready != bar.done:
            bar.done = ready - 1
            bar.advance()

    try:
        cluster.wait_until_committing(args.dir, procs, args.timeout, show)
    finally:
        bar.close()


def _cmd_status(args: argparse.Namespace) -> int:
    from ops import cluster

    limits = cluster.Limits(
        max_lag=args.max_lag or cluster.MAX_DECRYPTION_LAG,
        window_s=args.window or cluster.STALL_WINDOW_S,
    )
    try:
        ok, lines = cluster.status_lines(args.dir, limits)
    except cluster.ClusterError as exc:
        raise CliError(str(exc)) from None
    for line in lines:
        print(line)
    print(
        f"all nodes committing and decrypting (lag bound {limits.max_lag} blocks)"
        if ok
        else "NOT all nodes are up, committing and decrypting"
    )
    return 0 if ok else 1


def _cmd_cluster_down(args: argparse.Namespace) -> int:
    from ops import cluster

    try:
        stopped = cluster.stop(args.dir)
    except cluster.ClusterError as exc:
        raise CliError(str(exc)) from None
    killed = f" ({stopped.killed} ignored SIGTERM: killed)" if stopped.killed else ""
    print(f"stopped {stopped.count} validators{killed}")
    return 0


def _add_submit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "submit",
        help="encrypt and submit a transaction; wait until it is decrypted",
        description=(
            "Encrypt DATA for ROLLUP with the network's threshold key, submit it to a node's "
            "HTTP API and wait until it is committed and decrypted; exit 0 only then."
        ),
    )
    p.add_argument("--rollup", required=True, help="rollup namespace registered in genesis")
    p.add_argument("--dir", type=pathlib.Path, default=DEFAULT_CLUSTER_DIR, help="cluster dir")
    p.add_argument("--node", default=None, help="API host:port (default: first node of --dir)")
    p.add_argument("--genesis", type=pathlib.Path, default=None, help="genesis.json (with --node)")
    p.add_argument("--timeout", type=_positive, default=30, help="seconds to wait (30)")
    p.add_argument("data", help="the transaction bytes (UTF-8), or - for standard input")
    p.set_defaults(func=_cmd_submit)


def _cmd_submit(args: argparse.Namespace) -> int:
    from ops import cluster
    from sequencer_net.node.genesis import GenesisError, load_genesis

    payload = sys.stdin.buffer.read() if args.data == "-" else args.data.encode()
    try:
        genesis = load_genesis(args.genesis or args.dir / "genesis.json")
        address = args.node or cluster.members(args.dir)[0].api
        start = time.monotonic()
        record = cluster.submit_and_wait(address, genesis, args.rollup, payload, args.timeout)
    except (cluster.ClusterError, GenesisError) as exc:
        raise CliError(str(exc)) from None
    took = (time.monotonic() - start) * 1000
    print(
        f"{record['status']}: {record['digest']} at height {record['height']} position "
        f"{record['position']} ({record['namespace']}) in {took:.0f} ms"
    )
    return 0 if record["status"] == "decrypted" else 1


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure throughput and submit-to-decrypted latency of a local cluster",
        description=(
            "Start N validator processes on 127.0.0.1 (fresh keys in a temp dir), offer each "
            "rate for --seconds (pre-encrypted transactions in batches every 50 ms, spread over "
            "the nodes), then a backlog at once; print p50/p99 latency per rate and the "
            "saturation throughput against the crypto-only ceiling measured in the same run."
        ),
    )
    p.add_argument("--nodes", type=_positive, default=4, metavar="N", help="validators (4)")
    p.add_argument(
        "--rates", type=_rates, default=(25, 50, 100, 200), metavar="R[,R...]",
        help="offered transactions per second, in turn (default: 25,50,100,200)",
    )  # fmt: skip
    p.add_argument("--seconds", type=_positive, default=10, help="seconds per rate (10)")
    p.add_argument("--backlog", type=_positive, default=3000, help="saturation backlog (3000)")
    p.add_argument("--base-port", type=_positive, default=27100, help="first libp2p port")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ops import bench, cluster

    config = bench.BenchConfig(args.nodes, args.rates, args.seconds, args.backlog, args.base_port)
    try:
        bench.run(config)
    except cluster.ClusterError as exc:
        raise CliError(str(exc)) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqnet",
        description="seqnet: a decentralized shared sequencer (BFT fair ordering of "
        "threshold-encrypted transactions for many rollups).",
    )
    parser.add_argument("--version", action="version", version=f"seqnet {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_keygen(sub)
    _add_node(sub)
    _add_cluster(sub)
    _add_submit(sub)
    _add_bench(sub)
    _add_encrypt(sub)
    _add_sim(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logs.configure(args.log_level, args.log_format)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"seqnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
