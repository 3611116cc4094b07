"""``seqnet bench``: throughput and latency of a fresh local cluster, against a crypto ceiling."""

from __future__ import annotations

import argparse

from sequencer_net.cli.args import CliError, positive, rates


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument("--nodes", type=positive, default=4, metavar="N", help="validators (4)")
    p.add_argument(
        "--rates", type=rates, default=(25, 50, 100, 200), metavar="R[,R...]",
        help="offered transactions per second, in turn (default: 25,50,100,200)",
    )  # fmt: skip
    p.add_argument("--seconds", type=positive, default=10, help="seconds per rate (10)")
    p.add_argument("--backlog", type=positive, default=3000, help="saturation backlog (3000)")
    p.add_argument("--base-port", type=positive, default=27100, help="first libp2p port")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ops import bench
    from ops.processes import ClusterError
    from sequencer_net.client.http import ClientError
    from sequencer_net.node.network import NetworkFilesError

    config = bench.BenchConfig(args.nodes, args.rates, args.seconds, args.backlog, args.base_port)
    try:
        bench.run(config)
    except (ClusterError, ClientError, NetworkFilesError) as exc:
        raise CliError(str(exc)) from None
    return 0
