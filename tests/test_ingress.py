"""Transaction ingress: a replay is a duplicate however old; a flood slows only its source."""

from __future__ import annotations

import os
import pathlib
from dataclasses import replace

import trio
import trio.testing

from mev import kem
from mev.mempool import Admission, EncryptedMempool, MempoolLimits
from sequencer_net.base import codec
from sequencer_net.node.genesis import create
from sequencer_net.node.ingress import RELAY_AGAIN_S, RELAY_LATER_S, SLICE, TxIngress
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.storage import Store
from sequencer_net.node.wire import TX, TxBatch
from tests.cluster import encrypted
from tests.test_storage import NET, chain


async def test_bytes_committed_past_the_mempools_memory_are_still_refused(
    tmp_path: pathlib.Path,
) -> None:
    genesis, _ = create(4, chain_id=NET.chain_id)
    old, fresh = (encrypted(genesis, "rollup-a", p) for p in (b"long ago", b"new"))
    old_digest = kem.digest(codec.decode(kem.Ciphertext, old))
    store = Store(tmp_path / "node.db", NET.chain_id)
    store.append_commit(chain(1)[0], [old_digest])
    mempool = EncryptedMempool(
        genesis.threshold_key, NET.chain_id, genesis.namespaces, MempoolLimits()
    )
    admitted: list[bytes] = []
    ingress = TxIngress(
        mempool,
        [],
        lambda peer, data: None,
        lambda digest, ct: admitted.append(digest),
        NodeMetrics(),
        committed=store.committed_among,
    )
    assert not mempool.is_known(old_digest)  # nothing in memory: only the store knows
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ingress.check_loop)
        verdicts = await ingress.submit_many([old, fresh])
        nursery.cancel_scope.cancel()
    assert [(v.accepted, v.reason) for v in verdicts] == [(False, "duplicate"), (True, "accepted")]
    assert admitted == [verdicts[1].digest] and len(mempool) == 1


async def test_a_flooding_client_waits_behind_itself_not_in_front_of_others(
    tmp_path: pathlib.Path,
) -> None:
    genesis, _ = create(4, chain_id=NET.chain_id)
    good = codec.decode(kem.Ciphertext, encrypted(genesis, "rollup-a", b"x" * 32))
    flood = [  # each sealed payload replaced: unique digests, every proof fails
        codec.encode(replace(good, sealed=os.urandom(len(good.sealed)))) for _ in range(1024)
    ]
    honest = encrypted(genesis, "rollup-b", b"honest")
    mempool = EncryptedMempool(
        genesis.threshold_key, NET.chain_id, genesis.namespaces, MempoolLimits()
    )
    ingress = TxIngress(mempool, [], lambda peer, data: None, lambda d, ct: None, NodeMetrics())
    flood_verdicts: list[Admission] = []

    flooded = trio.Event()

    async def flooder() -> None:
        flood_verdicts.extend(await ingress.submit_many(flood, client=("10.0.0.1", 1)))
        flooded.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ingress.check_loop)
        nursery.start_soon(flooder)
        await trio.testing.wait_all_tasks_blocked()  # the whole flood is queued, checks began
        before = _refused(ingress)  # checks are fast: a slice or two may be done already
        verdict = await ingress.submit(honest, client=("10.0.0.2", 2))
        checked_before_honest = _refused(ingress) - before
        await flooded.wait()
        nursery.cancel_scope.cancel()
    assert verdict.accepted
    assert {v.reason for v in flood_verdicts} == {"bad-proof"}
    assert before + 2 * SLICE < len(flood)  # the flood was far from done when honest came
    assert checked_before_honest <= 2 * SLICE  # the slice in flight, then one turn each


def _refused(ingress: TxIngress) -> int:
    refused = ingress.metrics.admissions.labels("client", "bad-proof")._value.get()
    return int(refused)


async def test_a_peers_transaction_is_relayed_later_and_only_where_it_is_missing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    genesis, _ = create(4, chain_id=NET.chain_id)
    from_peer, from_peer_too, from_client = (
        encrypted(genesis, "rollup-a", p) for p in (b"relayed by 0", b"sent by 0 and 2", b"mine")
    )
    mempool = EncryptedMempool(
        genesis.threshold_key, NET.chain_id, genesis.namespaces, MempoolLimits()
    )
    posted: list[tuple[int, float, tuple[bytes, ...]]] = []

    def post(peer: int, data: bytes) -> None:
        batch = TX.decode(data)
        assert isinstance(batch, TxBatch)
        posted.append((peer, trio.current_time(), batch.txs))

    def peer_has(peer: int, digest: bytes) -> bool:
        return peer == 1  # peer 1's newest report lists everything

    ingress = TxIngress(
        mempool, [0, 1, 2], post, lambda d, ct: None, NodeMetrics(), peer_has=peer_has
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ingress.check_loop)
        nursery.start_soon(ingress.relay_loop)
        start = trio.current_time()
        ingress.on_frame(0, TX.encode(TxBatch((from_peer, from_peer_too))))
        await ingress.submit(from_client)
        await trio.sleep(0.1)
        ingress.on_frame(2, TX.encode(TxBatch((from_peer_too,))))  # a copy: 2 has it
        await trio.sleep(RELAY_LATER_S)
        nursery.cancel_scope.cancel()
    at_once = {(peer, txs) for peer, at, txs in posted if at - start < RELAY_LATER_S}
    later: dict[int, set[bytes]] = {}
    for peer, at, txs in posted:
        if at - start >= RELAY_LATER_S:
            later.setdefault(peer, set()).update(txs)
    assert at_once == {(0, (from_client,)), (1, (from_client,)), (2, (from_client,))}
    # a peer's: not back to 0, not to 1 (reported), not 2's own; the client's again to
    # the peers whose reports do not list it yet (the first frame may have been lost)
    assert later == {0: {from_client}, 2: {from_peer, from_client}}


async def test_a_transaction_is_offered_again_until_every_peer_reports_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A relay frame lost on a bad link must not strand a transaction at one node."""
    genesis, _ = create(4, chain_id=NET.chain_id)
    tx = encrypted(genesis, "rollup-a", b"lost on the way to 2")
    mempool = EncryptedMempool(
        genesis.threshold_key, NET.chain_id, genesis.namespaces, MempoolLimits()
    )
    sent_to_2: list[float] = []
    reported_by = {0, 1}

    def post(peer: int, data: bytes) -> None:
        if peer == 2:
            sent_to_2.append(trio.current_time())

    ingress = TxIngress(
        mempool, [0, 1, 2], post, lambda d, ct: None, NodeMetrics(),
        peer_has=lambda peer, digest: peer in reported_by,
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ingress.check_loop)
        nursery.start_soon(ingress.relay_loop)
        start = trio.current_time()
        await ingress.submit(tx)
        await trio.sleep(RELAY_LATER_S + 3 * RELAY_AGAIN_S + 0.1)
        assert len(sent_to_2) == 1 + 1 + 3  # at once, later, and every RELAY_AGAIN_S since
        reported_by.add(2)  # now 2's report lists it: no more
        await trio.sleep(3 * RELAY_AGAIN_S)
        nursery.cancel_scope.cancel()
    assert len(sent_to_2) == 5 and sent_to_2[-1] - start < RELAY_LATER_S + 3.5 * RELAY_AGAIN_S
