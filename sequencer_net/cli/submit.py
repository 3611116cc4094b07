"""``seqnet submit``: encrypt, submit to a node, wait until the transaction is decrypted.

A user's command, not operator tooling: it needs only the network's genesis
and a node's API address (or a cluster directory to find one in), and does
what any rollup client does, through ``sequencer_net.client``. Once the
transaction is decrypted it fetches the transaction's receipt and verifies it
from the genesis: a receipt that does not verify fails the command.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import TYPE_CHECKING

from sequencer_net.cli.args import DEFAULT_CLUSTER_DIR, CliError, positive

if TYPE_CHECKING:
    from sequencer_net.node.genesis import Genesis

RECEIPT_WAIT_S = 2.0  # after decryption, for the receipt's commit proof to be stored
RECEIPT_POLL_S = 0.05


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument("--timeout", type=positive, default=30, help="seconds to wait (30)")
    p.add_argument("data", help="the transaction bytes (UTF-8), or - for standard input")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sequencer_net.client.http import ClientError
    from sequencer_net.client.submit import submit_and_wait
    from sequencer_net.node.genesis import GenesisError, load_genesis
    from sequencer_net.node.network import NetworkFilesError, members

    payload = sys.stdin.buffer.read() if args.data == "-" else args.data.encode()
    try:
        genesis = load_genesis(args.genesis or args.dir / "genesis.json")
        address = args.node or members(args.dir)[0].api
        start = time.monotonic()
        record = submit_and_wait(address, genesis, args.rollup, payload, args.timeout)
    except (ClientError, NetworkFilesError, GenesisError) as exc:
        raise CliError(str(exc)) from None
    took = (time.monotonic() - start) * 1000
    print(
        f"{record['status']}: {record['digest']} at height {record['height']} position "
        f"{record['position']} ({record['namespace']}) in {took:.0f} ms"
    )
    if not _receipt(genesis, record["digest"], address):
        return 1
    return 0 if record["status"] == "decrypted" else 1


def _receipt(genesis: Genesis, digest: str, address: str) -> bool:
    """Fetch and verify the receipt, print it; False only if the node served a bad one."""
    from delivery.header import Unverified
    from sequencer_net.client.http import ClientError
    from sequencer_net.client.receipt import fetch_receipt

    deadline = time.monotonic() + RECEIPT_WAIT_S
    while True:
        try:
            receipt = fetch_receipt(genesis, digest, address)
            break
        except Unverified as exc:
            print(f"receipt from {address} does not verify: {exc}", file=sys.stderr)
            return False
        except ClientError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                print(f"no receipt: {exc}", file=sys.stderr)
                return True  # the transaction's fate stands; only the receipt is missing
            time.sleep(RECEIPT_POLL_S)
    proved = "" if receipt.decrypted is None else " (plaintext proved)"
    print(f"receipt verified at height {receipt.height} position {receipt.position}{proved}")
    return True
