"""Catch-up from peers' stores: only blocks proved committed are taken, and a late node joins."""

from __future__ import annotations

import pathlib
from dataclasses import replace

import trio

from ordering.blocktree import CommittedTip
from ordering.messages import Block, QuorumCert, block_hash
from ordering.validation import MessageValidator
from sequencer_net.node.catchup import CatchUp, SyncServer, verified_prefix
from sequencer_net.node.genesis import create
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Settings, Validator
from sequencer_net.node.wire import SYNC, SyncedBlock, SyncRequest, SyncResponse
from tests.cluster import encrypted, free_base_port, until
from tests.factory import Net
from tests.test_storage import _batch, _cert, _headers
from tests.test_storage import chain as committed_chain


def chain(net: Net, rounds: list[int]) -> list[SyncedBlock]:
    """Blocks at consecutive heights in the given rounds, each certified by a quorum."""
    out, parent = [], net.genesis_qc
    for r in rounds:
        block = net.block(r, parent)
        qc = net.qc(block)
        out.append(SyncedBlock(block, qc, None))
        parent = qc
    return out


def genesis_tip(net: Net) -> CommittedTip:
    return CommittedTip(net.genesis_qc.block_hash, 0, 0)


def test_only_blocks_with_a_certified_child_in_the_next_round_count_as_committed() -> None:
    net = Net()
    check = MessageValidator(net.committee)
    blocks = chain(net, [1, 2, 3, 5, 7])  # 3 -> 5 and 5 -> 7 skip a round
    proved = verified_prefix(check, genesis_tip(net), blocks)
    assert [b.block.round for b in proved] == [1, 2]  # 2 has child 3 in round 3; 3 is unproved
    assert verified_prefix(check, genesis_tip(net), chain(net, [1, 2, 3, 4])[:1]) == []


def test_forged_gapped_or_foreign_blocks_stop_the_prefix() -> None:
    net, other = Net(), Net(chain_id="another-chain")
    check = MessageValidator(net.committee)
    good = chain(net, [1, 2, 3, 4])
    forged_qc = QuorumCert(good[1].certificate.vote, other.qc(good[1].block).signatures)
    forged = [good[0], SyncedBlock(good[1].block, forged_qc, None), *good[2:]]
    assert len(verified_prefix(check, genesis_tip(net), forged)) == 0  # 1 is unproved: 2 is bad
    gap = [good[0], good[2], good[3]]
    assert verified_prefix(check, genesis_tip(net), gap) == []
    swapped = Block(2, 2, 2, good[0].certificate, b"other payload")
    lying = [good[0], SyncedBlock(swapped, good[1].certificate, None), *good[2:]]
    assert verified_prefix(check, genesis_tip(net), lying) == []  # certificate names another
    tip = CommittedTip(block_hash(good[1].block), 2, 2)
    assert [b.block.round for b in verified_prefix(check, tip, good[2:])] == [3]


async def test_batch_certificates_come_with_synced_blocks_and_are_checked_first(
    tmp_path: pathlib.Path,
) -> None:
    net = Net()
    server = Store(tmp_path / "server.db", net.chain_id)
    commits = committed_chain(5)
    headers = _headers(commits)
    for commit, header in zip(commits, headers, strict=True):
        server.append_commit(commit)
        server.save_batch(_batch(commit))
        server.save_header(header)
    for header in headers[:3]:
        server.save_batch_certificate(_cert(header))
    serve = SyncServer(server).answer
    answer = await serve(SYNC.encode(SyncRequest(1, 8)))
    assert answer is not None
    served = SYNC.decode(answer)
    assert [b.batch_certificate for b in served.blocks] == [_cert(h) for h in headers[:3]] + [
        None,
        None,
    ]

    async def honest(peer: int, data: bytes) -> bytes | None:
        return await serve(data)

    client = Store(tmp_path / "client.db", net.chain_id)
    catchup = CatchUp(MessageValidator(net.committee), client, [1], honest)
    assert await catchup.run() == 4  # the fifth is not proved committed
    assert [client.certificate_on_file(h) for h in range(1, 5)] == [
        *(_cert(h) for h in headers[:3]),
        None,
    ]
    assert client.batch_certificate(1) is None  # counts once this node opens it the same

    forged = [
        replace(served.blocks[0], batch_certificate=_cert(headers[0], (0, 1))),  # short
        replace(served.blocks[1], batch_certificate=_cert(headers[0])),  # of another height
        replace(
            served.blocks[2], batch_certificate=_cert(replace(headers[2], block_hash=b"\1" * 32))
        ),
        *served.blocks[3:],
    ]

    async def lying(peer: int, data: bytes) -> bytes | None:
        return SYNC.encode(SyncResponse(tuple(forged)))

    victim = Store(tmp_path / "victim.db", net.chain_id)
    fooled = CatchUp(MessageValidator(net.committee), victim, [1], lying)
    assert await fooled.run() == 4  # the blocks are good; none of the certificates is
    assert fooled.rejected == 3
    assert all(victim.certificate_on_file(h) is None for h in range(1, 5))


async def test_a_validator_started_late_catches_up_from_stores_and_decrypts(
    tmp_path: pathlib.Path,
) -> None:
    chain_id = "catchup-test"
    genesis, keys = create(4, chain_id=chain_id, base_port=free_base_port(4))
    settings = Settings(base_timeout_ms=500, heartbeat_ms=50)
    validators = [
        Validator(genesis, k, Store(tmp_path / f"node-{k.index}.db", chain_id), settings)
        for k in keys
    ]
    txs = [encrypted(genesis, "rollup-a", b"early-%d" % k) for k in range(40)]
    async with trio.open_nursery() as nursery:
        for v in validators[:3]:
            await nursery.start(v.run)
        await until(lambda: validators[0].store.committed_tip().height >= 3)
        assert all(x.accepted for x in await validators[0].submit_many(txs))
        await until(lambda: _opened(validators[0]) == len(txs), 60)
        ahead = validators[0].store.committed_tip().height
        late = validators[3]
        late.settings = replace(settings, new_node=True)  # its database was made just now
        await until(lambda: min(v.certified_height for v in validators[:3]) >= ahead - 2, 20)
        certified = min(v.certified_height for v in validators[:3])
        await nursery.start(late.run)  # catches up before its core starts
        assert late.store.committed_tip().height >= ahead - 2  # fetched from peers' stores
        fetched = min(certified, late.store.committed_tip().height)
        synced = [late.store.certificate_on_file(h) for h in range(1, fetched + 1)]
        assert fetched >= 1 and None not in synced  # came with the blocks, not asked for
        await until(lambda: _opened(late) == len(txs), 60)
        await until(lambda: late.certified_height >= ahead, 20)
        nursery.cancel_scope.cancel()
    for h in range(1, min(v.certified_height for v in validators) + 1):
        assert len({v.store.header(h) for v in validators}) == 1
    height = min(v.store.decrypted_tip() for v in validators)
    logs = [[(b.block_hash, b.txs) for b in v.store.batches(1, height)] for v in validators]
    assert all(log == logs[0] for log in logs)
    opened = sorted(t.plaintext for _, txs_ in logs[0] for t in txs_)
    assert opened == sorted(b"early-%d" % k for k in range(40))


def _opened(v: Validator) -> int:
    return sum(
        t.plaintext is not None for b in v.store.batches(1, v.store.decrypted_tip()) for t in b.txs
    )


async def test_a_running_validator_cut_off_past_the_peers_memory_rejoins_from_their_stores(
    tmp_path: pathlib.Path,
) -> None:
    """Peers keep 8 committed blocks in memory here; the cut-off node misses 30."""
    chain_id = "rejoin-test"
    genesis, keys = create(4, chain_id=chain_id, base_port=free_base_port(4))
    settings = Settings(base_timeout_ms=500, heartbeat_ms=50, retention=8, new_node=True)
    validators = [
        Validator(genesis, k, Store(tmp_path / f"node-{k.index}.db", chain_id), settings)
        for k in keys
    ]
    cut_off = validators[3]
    async with trio.open_nursery() as nursery:
        for v in validators:
            await nursery.start(v.run)
        await until(lambda: cut_off.store.committed_tip().height >= 3)
        deliver = cut_off.host._on_frame

        async def drop(protocol: str, sender: int, data: bytes) -> None:
            return None

        cut_off.host._on_frame = drop  # its inbound traffic is lost (a one-way partition)
        behind = cut_off.store.committed_tip().height
        await until(lambda: validators[0].store.committed_tip().height >= behind + 30, 60)
        cut_off.host._on_frame = deliver
        target = validators[0].store.committed_tip().height
        await until(lambda: cut_off.store.committed_tip().height >= target + 3, 60)
        nursery.cancel_scope.cancel()
    height = min(v.store.committed_tip().height for v in validators)
    chains = [[c.block_hash for c in v.store.commits(1, height)] for v in validators]
    assert all(chain == chains[0] for chain in chains)
