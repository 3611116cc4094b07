"""Four nodes in one trio process over real libp2p on 127.0.0.1 commit the same chain."""

from __future__ import annotations

import pathlib
from contextlib import AsyncExitStack

import trio

from ordering.fair.app import FairOrderingApp
from ordering.fair.policies import MedianTimestamp
from p2p.host import ValidatorHost
from sequencer_net.committee import Committee
from sequencer_net.genesis import peer_id
from sequencer_net.node import Node
from sequencer_net.signing import SigningKey
from sequencer_net.storage import Store

N = 4


async def test_four_nodes_commit_the_same_blocks(tmp_path: pathlib.Path) -> None:
    keys = [SigningKey.derive(f"node-test/{i}") for i in range(N)]
    committee = Committee.of("node-test", [k.public_key for k in keys])
    peers: list[tuple[str, str]] = []
    nodes: list[Node] = []
    hosts: list[ValidatorHost] = []
    for i, key in enumerate(keys):

        async def on_frame(sender: int, data: bytes, i: int = i) -> None:
            await nodes[i].on_frame(sender, data)

        hosts.append(ValidatorHost(key.seed, i, peers, on_frame))
    for i, key in enumerate(keys):
        app = FairOrderingApp(committee, i, key, MedianTimestamp(N, 1))
        store = Store(tmp_path / f"node-{i}.db", committee.chain_id)
        nodes.append(Node(committee, i, key, app, store, hosts[i].send, base_timeout_ms=500))
    async with AsyncExitStack() as stack:
        for h in hosts:
            await stack.enter_async_context(h.running())
        peers.extend(
            (peer_id(k.public_key), h.address.split("/p2p/")[0])
            for k, h in zip(keys, hosts, strict=True)
        )
        for h in hosts:
            h.set_peers(peers)
        async with trio.open_nursery() as nursery:
            for node in nodes:
                await nursery.start(node.run)
            with trio.fail_after(20):
                while min(n.commits for n in nodes) < 5:  # noqa: ASYNC110 - polls progress
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    logs = [n.store.commits(1, 5) for n in nodes]
    assert all(log == logs[0] for log in logs) and len(logs[0]) == 5
    assert all(sum(n.rejected.values()) == 0 for n in nodes), [n.rejected for n in nodes]


async def test_a_stopped_node_restarts_from_its_store_and_catches_up(
    tmp_path: pathlib.Path,
) -> None:
    keys = [SigningKey.derive(f"node-restart/{i}") for i in range(N)]
    committee = Committee.of("node-restart", [k.public_key for k in keys])
    nodes: list[Node] = []

    def make_node(i: int, send: object) -> Node:
        app = FairOrderingApp(committee, i, keys[i], MedianTimestamp(N, 1))
        store = Store(tmp_path / f"node-{i}.db", committee.chain_id)  # reopened on restart
        return Node(committee, i, keys[i], app, store, send, base_timeout_ms=300)  # type: ignore[arg-type]

    hosts = []
    for i, key in enumerate(keys):

        async def on_frame(sender: int, data: bytes, i: int = i) -> None:
            await nodes[i].on_frame(sender, data)  # whichever Node object is current

        hosts.append(ValidatorHost(key.seed, i, [], on_frame))
    nodes.extend(make_node(i, hosts[i].send) for i in range(N))
    async with AsyncExitStack() as stack:
        for h in hosts:
            await stack.enter_async_context(h.running())
        peers = [
            (peer_id(k.public_key), h.address.split("/p2p/")[0])
            for k, h in zip(keys, hosts, strict=True)
        ]
        for h in hosts:
            h.set_peers(peers)
        async with trio.open_nursery() as nursery:
            scopes = []
            for node in nodes:
                scope = trio.CancelScope()
                scopes.append(scope)
                nursery.start_soon(_run_in, scope, node)
            await _until(lambda: min(n.commits for n in nodes) >= 3)
            scopes[3].cancel()  # node 3 stops; its database stays
            await trio.sleep(0.1)
            nodes[3].store.close()
            stopped_at = Store(tmp_path / "node-3.db", committee.chain_id).committed_tip().height
            await _until(
                lambda: min(n.store.committed_tip().height for n in nodes[:3]) >= stopped_at + 6
            )
            nodes[3] = make_node(3, hosts[3].send)
            assert nodes[3].core.tree.tip.height == stopped_at  # restarted from its store
            nursery.start_soon(_run_in, trio.CancelScope(), nodes[3])
            await _until(lambda: nodes[3].store.committed_tip().height >= stopped_at + 8)
            nursery.cancel_scope.cancel()
    height = min(n.store.committed_tip().height for n in nodes)
    logs = [n.store.commits(1, height) for n in nodes]
    assert height >= stopped_at + 8 and all(log == logs[0] for log in logs)


async def _run_in(scope: trio.CancelScope, node: Node) -> None:
    with scope:
        await node.run()


async def _until(condition: object, seconds: float = 30.0) -> None:
    with trio.fail_after(seconds):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - polls progress
            await trio.sleep(0.05)
