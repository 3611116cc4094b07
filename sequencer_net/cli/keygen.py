"""``seqnet keygen``: a local network's genesis, keys, configs and databases (trusted dealer)."""

from __future__ import annotations

import argparse
import pathlib

from sequencer_net.cli.args import positive, write_network


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keygen",
        help="create genesis and validator keys for a local network (trusted dealer)",
        description=(
            "Write DIR/genesis.json and DIR/node-<i>.key.json (mode 0600): an ed25519 key per "
            "validator (vote key and libp2p identity) and a threshold key share from a "
            "trusted dealer. For networks without a trusted party, use the DKG."
        ),
    )
    p.add_argument("--nodes", type=positive, required=True, metavar="N", help="validators")
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
        type=positive,
        default=7100,
        help="validator i listens on base-port + i, its HTTP API on base-port + 1000 + i, "
        "its /metrics on base-port + 2000 + i (default: 7100)",
    )
    p.add_argument(
        "--test-network",
        action="store_true",
        help="mark the genesis as a test network: each validator gets an admin endpoint on "
        "127.0.0.1 (base-port + 3000 + i, token in DIR/admin-token) to switch link faults "
        "and Byzantine behaviour at run time (seqnet chaos); never for a real network",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing network: genesis, keys, configs, and its databases are deleted",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    namespaces = tuple(ns.strip() for ns in args.namespaces.split(",") if ns.strip())
    genesis = write_network(
        args.dir,
        args.nodes,
        chain_id=args.chain_id,
        namespaces=namespaces,
        host=args.host,
        base_port=args.base_port,
        force=args.force,
        test_network=args.test_network,
    )
    t = genesis.threshold_key.threshold
    print(
        f"wrote {args.dir}/genesis.json: chain {genesis.chain_id}, n={genesis.n}, "
        f"f={genesis.f}, threshold t={t}, namespaces {', '.join(namespaces)}"
    )
    print(f"wrote {genesis.n} key files {args.dir}/node-<i>.key.json (mode 0600)")
    print(f"wrote {genesis.n} configs {args.dir}/node-<i>.toml: run one with seqnet node --config")
    return 0
