"""Four validators in one trio process over real libp2p on 127.0.0.1: the whole path.

Encrypted transactions submitted to different validators are relayed, fairly
ordered, committed, decrypted jointly, and stored identically by every node.
"""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
import trio

from mev import group
from mev.committed import CommittedBatch
from mev.decryptor import Decryptor
from mev.shares import ShareBatch
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


@pytest.mark.parametrize("corrupt", [False, True], ids=["honest", "node-0-corrupts-shares"])
async def test_transactions_are_ordered_decrypted_and_stored_identically(
    tmp_path: pathlib.Path, corrupt: bool
) -> None:
    validators = make_validators(tmp_path, "validator-test")
    if corrupt:  # a Byzantine validator: well-formed share batches, every share wrong
        validators[0].decryption.decryptor = CorruptShares(validators[0].decryption.decryptor)
    genesis = validators[0].genesis
    sent = {encrypted(genesis, NAMESPACES[k % 2], b"tx-%d" % k): b"tx-%d" % k for k in range(120)}
    async with trio.open_nursery() as nursery:
        for v in validators:
            await nursery.start(v.run)
        if corrupt:  # node 1 hears 0's shares first, so it must combine with them
            _delay_shares(validators[1], from_nodes={2, 3}, seconds=0.1, nursery=nursery)
        for k, data in enumerate(sent):
            verdict = await validators[k % N].submit(data)
            assert verdict.accepted, verdict
        await until(lambda: min(_decrypted_count(v) for v in validators) >= len(sent), 60)
        decrypted = [v.decrypted_height for v in validators]  # empty blocks go on after it
        await until(
            lambda: all(
                v.certified_height >= h for v, h in zip(validators, decrypted, strict=True)
            ),
            30,
        )
        nursery.cancel_scope.cancel()
    logs = [decrypted_log(v) for v in validators]
    shortest = min(len(log) for log in logs)
    assert all(log[:shortest] == logs[0][:shortest] for log in logs)
    plaintexts = [p for _, _, txs in logs[0] for _, p in txs]
    assert sorted(plaintexts) == sorted(sent.values())  # each exactly once
    honest = validators[1:] if corrupt else validators
    for v in honest:
        assert _observed_metrics_agree(v, submitted=len(sent) // N)
        invalid = {
            s: _value(v, "seqnet_decryption_shares_invalid_total", sender=str(s)) for s in range(N)
        }
        named = {s for s, count in invalid.items() if count}
        assert named <= ({0} if corrupt else set())  # only the corrupt sender, if any
        assert named == {0} or not (corrupt and v.me == 1)  # node 1 had to use its shares
        if not corrupt:
            assert hostile(v.metrics.registry) == {}


def _delay_shares(
    v: Validator, from_nodes: set[int], seconds: float, nursery: trio.Nursery
) -> None:
    """Frames of the shares protocol from ``from_nodes`` reach ``v`` ``seconds`` late."""
    deliver = v.decryption.on_frame

    async def later(sender: int, data: bytes) -> None:
        await trio.sleep(seconds)
        deliver(sender, data)

    def on_frame(sender: int, data: bytes) -> None:
        if sender in from_nodes:
            nursery.start_soon(later, sender, data)
        else:
            deliver(sender, data)

    v.decryption.on_frame = on_frame  # type: ignore[method-assign]


class CorruptShares(Decryptor):
    """Makes share batches as an honest validator would, then replaces every share."""

    def __init__(self, honest: Decryptor) -> None:
        self.__dict__.update(honest.__dict__)

    def share(self, batch: CommittedBatch) -> ShareBatch:
        real = super().share(batch)
        return dataclasses.replace(real, shares=tuple(group.base_mul(7) for _ in real.shares))


def _value(v: Validator, name: str, **labels: str) -> float:
    return v.metrics.registry.get_sample_value(name, labels) or 0.0


def _observed_metrics_agree(v: Validator, submitted: int) -> bool:
    """What node ``v`` exports of the others and of the order, after the load above."""
    peers = [str(i) for i in range(N) if i != v.me]
    received = [_value(v, "seqnet_decryption_shares_received_total", sender=p) for p in peers]
    certified, committed, opened = (
        sum(_value(v, f"seqnet_{name}_seconds_count", namespace=ns) for ns in NAMESPACES)
        for name in ("submit_to_certified", "submit_to_commit", "commit_to_decrypt")
    )
    pairs = _value(v, "seqnet_order_pairs_total")
    return (
        _value(v, "seqnet_connected_validators") == N - 1
        and all(count > 0 for count in received)
        and _value(v, "seqnet_inclusion_delay_blocks_count") > 0
        and 0 <= _value(v, "seqnet_order_inversions_total") <= pairs
        and certified == submitted  # every tx submitted here, once its batch was certified
        and committed == submitted  # and once committed, by its namespace
        and opened > 0
    )


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
