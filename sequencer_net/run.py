"""Running one validator process: load config, genesis and keys; host + node; stop on a signal."""

from __future__ import annotations

import logging
import signal

import trio

from ordering.fair.app import FairOrderingApp
from ordering.fair.policies import make_policy
from p2p.host import ValidatorHost
from sequencer_net.config import NodeConfig
from sequencer_net.genesis import fingerprint, load_genesis, load_keys
from sequencer_net.logs import event
from sequencer_net.node import Node
from sequencer_net.storage import Store

log = logging.getLogger("seqnet.run")
PROGRESS_EVERY_S = 5.0


async def run_node(config: NodeConfig) -> None:
    """Run until SIGINT or SIGTERM; raises GenesisError/StorageError/ValueError on bad setup."""
    genesis = load_genesis(config.genesis)
    keys = load_keys(config.keys)
    keys.check_against(genesis)
    committee = genesis.committee()
    me = keys.index
    policy = make_policy(config.policy, genesis.n, genesis.f)
    store = Store(config.database, genesis.chain_id)
    app = FairOrderingApp(committee, me, keys.signing_key, policy)
    node: Node | None = None

    async def on_frame(sender: int, data: bytes) -> None:
        if node is not None:
            await node.on_frame(sender, data)

    peers = [(v.peer_id, v.address) for v in genesis.validators]
    host = ValidatorHost(
        keys.signing_key.seed, me, peers, on_frame, listen=config.listen or peers[me][1]
    )
    node = Node(committee, me, keys.signing_key, app, store, host.send, config.base_timeout_ms)
    event(
        log,
        "starting",
        index=me,
        chain=genesis.chain_id,
        genesis=fingerprint(genesis),
        height=store.committed_tip().height,
        listen=config.listen or peers[me][1],
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with host.running(), trio.open_nursery() as nursery:
            nursery.start_soon(node.run)
            nursery.start_soon(_report_progress, node)
            async for signum in signals:
                event(log, "stopping", signal=signal.Signals(signum).name, commits=node.commits)
                nursery.cancel_scope.cancel()
                break
    store.close()


async def _report_progress(node: Node) -> None:
    while True:
        await trio.sleep(PROGRESS_EVERY_S)
        event(
            log,
            "progress",
            round=node.core.round,
            height=node.core.tree.tip.height,
            commits=node.commits,
            rejected=sum(node.rejected.values()),
        )
