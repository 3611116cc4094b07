"""``seqnet subscribe``: follow a rollup's certified batches, each verified from the genesis.

A user's command, like ``submit``: it needs only the network's genesis and
nodes' API addresses (by default every node of a cluster directory), and does
what any rollup does, through ``sequencer_net.client.subscribe``. One line per
height on stdout (or one JSON object with ``--json``); nodes that fail or lie
are reported on stderr while it carries on with the others.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import TYPE_CHECKING, Any

from sequencer_net.cli.args import DEFAULT_CLUSTER_DIR, CliError, positive

if TYPE_CHECKING:
    from delivery.batch import VerifiedBatch
    from sequencer_net.client.subscribe import Subscription

DESCRIPTION = """\
Print ROLLUP's batches from height --from on, one per height, in order, with no
gap and no duplicate, as they are certified (heights where the rollup has no
transaction included). Nothing a node says is trusted: each batch is checked
against the genesis alone. Its header must carry the signatures of a quorum of
the genesis validators; its transactions must be exactly all of ROLLUP's in
that batch, in consensus order (a namespaced Merkle proof against the signed
root); and each header must extend the one before (its parent batch hash). A
node that serves anything else is named on stderr and not asked again; a node
that is down, closes or falls silent is replaced by the next one, from the
height still needed. Exits 2 if no honest-looking node is left, 0 on Ctrl-C.

With --carrier gossip it runs its own libp2p peer (not a validator): it dials
the genesis validators (or --peer), follows the rollup's GossipSub topic
/seqnet/batches/ROLLUP/1, asks a validator for any height gossip missed, and
with --listen relays the topic to other subscribers that dial it.
"""


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "subscribe",
        help="follow a rollup's certified batches, each verified from the genesis",
        description=DESCRIPTION,
    )
    p.add_argument("--rollup", required=True, help="rollup namespace registered in genesis")
    p.add_argument("--from", dest="from_height", type=positive, default=1, help="first height (1)")
    p.add_argument(
        "--node",
        action="append",
        default=None,
        metavar="HOST:PORT",
        help="a node's API address, repeatable (default: every node of --dir)",
    )
    p.add_argument("--dir", type=pathlib.Path, default=DEFAULT_CLUSTER_DIR, help="cluster dir")
    p.add_argument("--genesis", type=pathlib.Path, default=None, help="genesis.json (with --node)")
    p.add_argument("--json", action="store_true", help="one JSON object per batch")
    p.add_argument("--count", type=positive, default=None, help="stop after N batches")
    p.add_argument(
        "--carrier",
        choices=["websocket", "http", "gossip"],
        default="websocket",
        help="the node's stream (websocket, default), polling GET (http), or libp2p gossip",
    )
    p.add_argument(
        "--peer",
        action="append",
        default=None,
        metavar="MULTIADDR",
        help="gossip: a peer to dial (…/p2p/ID), repeatable (default: the genesis validators)",
    )
    p.add_argument(
        "--listen",
        default=None,
        metavar="MULTIADDR",
        help="gossip: accept other subscribers here and relay to them (e.g. /ip4/0.0.0.0/tcp/7400)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trio

    from sequencer_net.client.gossip import GossipOptions
    from sequencer_net.client.http import ClientError
    from sequencer_net.client.subscribe import Subscription
    from sequencer_net.node.genesis import GenesisError, load_genesis
    from sequencer_net.node.network import NetworkFilesError, members

    try:
        genesis = load_genesis(args.genesis or args.dir / "genesis.json")
        gossip = args.carrier == "gossip"
        nodes = args.node or ([] if gossip else [member.api for member in members(args.dir)])
        options = GossipOptions(peers=args.peer, listen=args.listen)
        sub = Subscription(
            genesis, args.rollup, args.from_height, nodes, carrier=args.carrier, gossip=options
        )
    except (ValueError, NetworkFilesError, GenesisError) as exc:
        raise CliError(str(exc)) from None
    try:
        trio.run(_print_batches, sub, args.count, args.json)
    except ClientError as exc:
        raise CliError(str(exc)) from None
    except (KeyboardInterrupt, BaseExceptionGroup) as exc:
        if not _interrupted(exc):
            raise
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _print_batches(sub: Subscription, count: int | None, as_json: bool) -> None:
    printed = 0
    async with sub.batches() as batches:
        if sub.gossip is not None:
            await _announce(sub)
        async for batch in batches:
            print(json.dumps(as_record(batch)) if as_json else as_line(batch), flush=True)
            printed += 1
            if printed == count:
                return


async def _announce(sub: Subscription) -> None:
    """Say on stderr where this subscriber's libp2p peer listens (for relays)."""
    assert sub.gossip is not None
    await sub.gossip.peer.listening.wait()
    print(f"gossip peer {sub.gossip.peer.address}", file=sys.stderr, flush=True)


def as_line(batch: VerifiedBatch) -> str:
    """``height 12  3 txs (1 invalid)  batch 1a2b3c4d5e6f7a8b..``"""
    txs = len(batch.leaves)
    invalid = sum(1 for leaf in batch.leaves if leaf.plaintext is None)
    count = f"{txs} tx" if txs == 1 else f"{txs} txs"
    if invalid:
        count += f" ({invalid} invalid)"
    return f"height {batch.height}  {count}  batch {batch.batch_hash.hex()[:16]}.."


def as_record(batch: VerifiedBatch) -> dict[str, Any]:
    """The JSON of one batch: plaintext as UTF-8 text, else ``hex:``, null if invalid."""
    return {
        "height": batch.height,
        "batch_hash": batch.batch_hash.hex(),
        "transactions": [
            {"digest": leaf.digest.hex(), "plaintext": show(leaf.plaintext)}
            for leaf in batch.leaves
        ],
    }


def show(plaintext: bytes | None) -> str | None:
    if plaintext is None:
        return None
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + plaintext.hex()


def _interrupted(exc: BaseException) -> bool:
    """Ctrl-C, perhaps inside a group of tasks that were cancelled with it."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_interrupted(e) for e in exc.exceptions)
    import trio

    return isinstance(exc, KeyboardInterrupt | trio.Cancelled)
