"""``seqnet encrypt``: a transaction encrypted for a network's threshold key, as hex or CBOR."""

from __future__ import annotations

import argparse
import pathlib
import sys

from sequencer_net.cli.args import CliError


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sequencer_net.client.encrypt import seal
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
        sealed = seal(genesis, args.namespace, payload)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.out is not None:
        args.out.write_bytes(sealed.data)
        print(f"wrote {len(sealed.data)} bytes to {args.out} (digest {sealed.digest.hex()})")
    else:
        print(sealed.data.hex())
    return 0
