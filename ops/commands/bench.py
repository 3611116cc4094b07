"""``seqnet bench``: throughput and latency of a fresh local cluster, against a crypto ceiling."""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys

from ops.commands import finite
from sequencer_net.cli.args import CliError, positive, rates


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure throughput and submit-to-decrypted/-to-rollup latency of a local cluster",
        description=(
            "Start N validator processes on 127.0.0.1 (fresh keys in a temp dir) and a rollup "
            "follower (one verifying subscriber per namespace: WebSocket reading the last "
            "node, or --carrier gossip), offer each rate for --seconds (pre-encrypted "
            "transactions in batches every 50 ms, spread over the other nodes), then a "
            "backlog at once; print p50/p99 latency per rate to decrypted and to verified "
            "at the rollup, the saturation throughput against the crypto-only ceiling "
            "measured in the same run, each node's resident memory (VmRSS) at the end of "
            "each phase and its peak during it, the load client's own rate against a null "
            "sink (the saturation's submission code against a stub HTTP server that accepts "
            "everything, once the nodes are stopped: does the client or the cluster "
            "saturate?), the bytes and CPU per batch of certificates and proofs, "
            "measured on batches of the run, and the same rates and backlog against a "
            "centralized single sequencer (ops.centralized: same HTTP ingress and WebSocket "
            "delivery, no consensus, no encryption), seqnet's figures as ratios to it."
        ),
    )
    p.add_argument("--nodes", type=positive, default=4, metavar="N", help="validators (4)")
    p.add_argument(
        "--rates", type=rates, default=(25, 50, 100, 200), metavar="R[,R...]",
        help="offered transactions per second, in turn (default: 25,50,100,200)",
    )  # fmt: skip
    p.add_argument("--seconds", type=positive, default=10, help="seconds per rate (10)")
    p.add_argument("--backlog", type=positive, default=3000, help="saturation backlog (3000)")
    p.add_argument("--base-port", type=positive, default=27100, help="first libp2p port")
    p.add_argument(
        "--tx-bytes", type=positive, default=256, metavar="B",
        help="plaintext bytes per transaction (256); the ciphertext adds ~150",
    )  # fmt: skip
    p.add_argument(
        "--carrier", choices=["websocket", "gossip"], default="websocket",
        help="how the rollup follower gets its batches (websocket)",
    )  # fmt: skip
    p.add_argument(
        "--no-baseline", dest="baseline", action="store_false",
        help="skip the centralized single-sequencer baseline (run after the cluster)",
    )  # fmt: skip
    p.add_argument(
        "--json", action="store_true",
        help="print the results as one JSON document on stdout (the tables go to stderr)",
    )  # fmt: skip
    p.add_argument(
        "--plot", type=pathlib.Path, metavar="PATH",
        help="also write the latency against offered load as an SVG picture to PATH",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ops import bench, plot
    from ops.processes import ClusterError
    from sequencer_net.client.http import ClientError
    from sequencer_net.node.network import NetworkFilesError

    if args.plot is not None and not args.plot.parent.is_dir():
        raise CliError(f"--plot: no directory {args.plot.parent}")  # before minutes of bench
    config = bench.BenchConfig(
        args.nodes,
        args.rates,
        args.seconds,
        args.backlog,
        args.base_port,
        args.carrier,
        args.tx_bytes,
        baseline=args.baseline,
    )
    try:
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            result = bench.run(config)
    except (ClusterError, ClientError, NetworkFilesError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(finite(result), indent=2))
    if args.plot is not None:
        try:
            plot.write_latency_svg(result, args.plot)
        except OSError as exc:
            raise CliError(f"--plot: cannot write {args.plot}: {exc.strerror}") from None
        print(f"latency plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0
