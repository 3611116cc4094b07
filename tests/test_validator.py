"""Four validators in one trio process over real libp2p on 127.0.0.1: the whole path.

Encrypted transactions submitted to different validators are relayed, fairly
ordered, committed, decrypted jointly, and stored identically by every node.
"""

from __future__ import annotations

import pathlib

import trio

from sequencer_net.node.genesis import create
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Settings, Validator
from tests.cluster import encrypted, free_base_port, hostile, until

N = 4
NAMESPACES = ("rollup-a", "rollup-b")


def make_validators(tmp_path: pathlib.Path, chain: str) -> list[Validator]:
    genesis, keys = create(N, chain_id=chain, namespaces=NAMESPACES, base_port=free_base_port(N))
    settings = Settings(base_timeout_ms=500, heartbeat_ms=100, new_node=True)
    return [
        Validator(genesis, k, Store(tmp_path / f"node-{k.index}.db", chain), settings) for k in keys
    ]


def decrypted_log(v: Validator) -> list[tuple[int, bytes, tuple[tuple[str, bytes | None], ...]]]:
    height = v.store.decrypted_tip()
    return [
        (b.height, b.block_hash, tuple((tx.namespace, tx.plaintext) for tx in b.txs))
        for b in v.store.batches(1, height)
    ]


async def test_transactions_are_ordered_decrypted_and_stored_identically(
    tmp_path: pathlib.Path,
) -> None:
    validators = make_validators(tmp_path, "validator-test")
    genesis = validators[0].genesis
    sent = {encrypted(genesis, NAMESPACES[k % 2], b"tx-%d" % k): b"tx-%d" % k for k in range(120)}
    async with trio.open_nursery() as nursery:
        for v in validators:
            await nursery.start(v.run)
        for k, data in enumerate(sent):
            verdict = await validators[k % N].submit(data)
            assert verdict.accepted, verdict
        await until(lambda: min(_decrypted_count(v) for v in validators) >= len(sent), 60)
        nursery.cancel_scope.cancel()
    logs = [decrypted_log(v) for v in validators]
    shortest = min(len(log) for log in logs)
    assert all(log[:shortest] == logs[0][:shortest] for log in logs)
    plaintexts = [p for _, _, txs in logs[0] for _, p in txs]
    assert sorted(plaintexts) == sorted(sent.values())  # each exactly once
    for v in validators:
        assert hostile(v.metrics.registry) == {}


def _decrypted_count(v: Validator) -> int:
    return sum(len(b.txs) for b in v.store.batches(1, v.store.decrypted_tip()))


async def test_the_whole_committee_restarts_at_once_and_continues(tmp_path: pathlib.Path) -> None:
    """Certified but uncommitted blocks survive a full restart (they are stored when voted)."""
    validators = make_validators(tmp_path, "restart-all")
    async with trio.open_nursery() as nursery:
        for v in validators:
            await nursery.start(v.run)
        await until(lambda: min(v.store.committed_tip().height for v in validators) >= 5)
        nursery.cancel_scope.cancel()
    stopped_at = max(v.store.committed_tip().height for v in validators)
    genesis, settings = validators[0].genesis, validators[0].settings
    for v in validators:
        v.store.close()
    again = [
        Validator(genesis, v.keys, Store(v.store.path, genesis.chain_id), settings)
        for v in validators
    ]
    async with trio.open_nursery() as nursery:
        for v in again:
            await nursery.start(v.run)
        await until(lambda: min(v.store.committed_tip().height for v in again) >= stopped_at + 5)
        # votes held in memory died with the processes: missing certificates are asked for,
        # and peers without one answer with their vote again
        await until(lambda: min(v.certified_height for v in again) >= stopped_at, 20)
        nursery.cancel_scope.cancel()
    height = min(v.store.committed_tip().height for v in again)
    chains = [[c.block_hash for c in v.store.commits(1, height)] for v in again]
    assert all(chain == chains[0] for chain in chains)
