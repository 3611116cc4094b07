"""``seqnet soak``: a long steady load on a local cluster; memory per node, and nothing lost."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
from typing import NoReturn

from ops.commands import finite
from sequencer_net.cli.args import CliError, positive


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "soak",
        help="run a local cluster under steady load for a long time: is memory flat, "
        "is anything lost?",
        description=(
            "A leak or a slowly growing queue that a few seconds of `seqnet bench` cannot show "
            "dominates after half an hour. Start N validator processes on 127.0.0.1 (fresh "
            "keys in a temp dir), offer --rate transactions per second for --minutes, open "
            "loop (every 50 ms what is due so far, round-robin over the nodes; choose about "
            "70 % of the saturation `seqnet bench` measures), encrypted on the fly by child "
            "processes a few seconds ahead of the submitter (the report says whether they "
            "kept up: the offered rate achieved). Every --sample-s seconds a Markdown table "
            "row: each node's resident memory (VmRSS), committed height and decrypted "
            "transactions, and the rate offered since the last row. Then the verdict: each "
            "node's RSS at the start of the second half (the first is warm-up) and at the "
            "end, the growth in MiB and %, the least-squares slope over the second half in "
            "MiB per 10 minutes; and lost = acknowledged transactions never decrypted, every "
            "one checked by digest against node 0's decrypted batches after a drain wait, "
            "and every node's decrypted count per namespace against what was acknowledged. "
            "Exit status 1 if anything was lost (or a node fell short or died); the nodes "
            "are stopped cleanly at the end and on Ctrl-C, and their databases removed "
            "(logs kept) unless --keep-data."
        ),
    )
    p.add_argument("--nodes", type=positive, default=4, metavar="N", help="validators (4)")
    p.add_argument(
        "--rate", type=positive, default=800, metavar="R",
        help="offered transactions per second (800)",
    )  # fmt: skip
    p.add_argument(
        "--minutes", type=positive_float, default=30.0, metavar="M",
        help="how long the load lasts (30; fractions allowed)",
    )  # fmt: skip
    p.add_argument(
        "--tx-bytes", type=positive, default=256, metavar="B",
        help="plaintext bytes per transaction (256); the ciphertext adds ~150",
    )  # fmt: skip
    p.add_argument(
        "--sample-s", type=positive_float, default=10.0, metavar="S",
        help="seconds between samples (10)",
    )  # fmt: skip
    p.add_argument("--base-port", type=positive, default=28000, help="first libp2p port (28000)")
    p.add_argument(
        "--generators", type=positive, default=1, metavar="G",
        help="child processes encrypting the load (1; ~0.2 ms per transaction each)",
    )  # fmt: skip
    p.add_argument(
        "--keep-data", action="store_true", help="keep the node databases (GiBs after 30 min)"
    )
    p.add_argument(
        "--json", action="store_true",
        help="print the samples and the verdict as one JSON document on stdout (the table "
        "goes to stderr)",
    )  # fmt: skip
    p.set_defaults(func=run)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def run(args: argparse.Namespace) -> int:
    from ops import soak
    from ops.processes import ClusterError
    from sequencer_net.client.http import ClientError
    from sequencer_net.node.network import NetworkFilesError

    config = soak.SoakConfig(
        nodes=args.nodes,
        rate=args.rate,
        minutes=args.minutes,
        tx_bytes=args.tx_bytes,
        sample_s=args.sample_s,
        base_port=args.base_port,
        generators=args.generators,
        keep_data=args.keep_data,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop the nodes as on Ctrl-C
    try:
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            result = soak.run(config)
    except (ClusterError, ClientError, NetworkFilesError) as exc:
        raise CliError(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(finite(result), indent=2))
    return 0 if result["verdict"]["ok"] else 1


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt
