"""Batch certificates: validators sign what each committed block decrypted to.

The first tests drive one :class:`Attestation` over a real store, with its
peers played by the test committee's keys: every decision it makes on a vote,
a request or a reply. The last runs four validators over real libp2p, one of
them deaf to votes for a while, and checks that all of them end with the same
certified headers, the deaf one by asking its peers.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import trio

from delivery.header import (
    BatchCertificate,
    BatchHeader,
    batch_hash,
    genesis_batch_hash,
    verify_certificate,
)
from delivery.nmt import namespace_root, tree_order
from sequencer_net.base.signing import Signed, sign_bytes
from sequencer_net.node.attestation import Attestation
from sequencer_net.node.batches import header_of, leaves_of, namespace_batch
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Validator
from sequencer_net.node.wire import (
    SHARES,
    BatchVote,
    CertificateReply,
    CertificateRequest,
    DecryptedBatch,
    DecryptedTx,
)
from tests.cluster import encrypted, hostile, ignored, rejections, until
from tests.factory import Net
from tests.test_storage import chain
from tests.test_validator import make_validators

NET = Net(4)
PEERS = [1, 2, 3]


def batch_at(store: Store, height: int) -> DecryptedBatch:
    """An opened batch for the committed block at ``height``: one tx did not open."""
    block_hash = store.commits(height, 1)[0].block_hash
    txs = (
        DecryptedTx("rollup-b", bytes([height, 1]) * 16, b"b-%d" % height),
        DecryptedTx("rollup-a", bytes([height, 2]) * 16, None),
        DecryptedTx("rollup-a", bytes([height, 3]) * 16, b"a-%d" % height),
    )
    return DecryptedBatch(height, block_hash, txs, (b"\x01" * 32, b"", b"\x02" * 32))


def vote(signer: int, header: BatchHeader) -> BatchVote:
    return BatchVote(NET.keys[signer].sign(header, NET.chain_id, signer))


def certificate(header: BatchHeader, signers: list[int]) -> BatchCertificate:
    message = sign_bytes(header, NET.chain_id)
    return BatchCertificate(header, tuple((s, NET.keys[s].sign_raw(message)) for s in signers))


class Node:
    """Validator 0's attestation over a store holding ``heights`` committed blocks."""

    def __init__(self, path: pathlib.Path, heights: int = 3, store: Store | None = None) -> None:
        if store is None:
            store = Store(path / "node.db", NET.chain_id)
            for commit in chain(heights):
                store.append_commit(commit)
        self.store = store
        self.metrics = NodeMetrics()
        self.sent: list[tuple[int, object]] = []
        self.att = Attestation(
            NET.committee,
            0,
            NET.keys[0],
            store,
            PEERS,
            lambda peer, data: self.sent.append((peer, SHARES.decode(data))),
            self.metrics,
        )

    def decrypt(self, height: int) -> None:
        batch = batch_at(self.store, height)
        self.store.save_batch(batch)
        self.att.on_decrypted(batch)

    async def signed(self, height: int) -> BatchHeader:
        """This node's header for ``height``, once it has signed and sent it."""
        await until(lambda: any(_votes_for(self.sent, height)), 5)
        header = self.store.header(height)
        assert header is not None
        return header

    def hear(self, sender: int, message: BatchVote | CertificateRequest | CertificateReply) -> None:
        self.att.on_message(sender, message)

    def sent_to(self, peer: int) -> list[object]:
        return [m for p, m in self.sent if p == peer]

    def rejected(self) -> dict[str, float]:
        return {r: n for (_, r), n in rejections(self.metrics.registry).items()}

    def ignored(self) -> dict[str, float]:
        return {r: n for (_, r), n in ignored(self.metrics.registry).items()}


def _votes_for(sent: list[tuple[int, object]], height: int) -> list[Signed[BatchHeader]]:
    return [
        m.signed
        for _, m in sent
        if isinstance(m, BatchVote) and m.signed.statement.height == height
    ]


@asynccontextmanager
async def running(node: Node) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.att.run)
        yield
        nursery.cancel_scope.cancel()


async def test_a_quorum_of_identical_headers_is_a_certificate_stored_and_served(
    tmp_path: pathlib.Path,
) -> None:
    node = Node(tmp_path)
    async with running(node):
        node.decrypt(1)
        header = await node.signed(1)
        batch = batch_at(node.store, 1)
        assert header == header_of(NET.chain_id, batch, genesis_batch_hash(NET.chain_id))
        leaves = tree_order(leaves_of(batch))
        assert [leaf.namespace for leaf in leaves] == ["rollup-a", "rollup-a", "rollup-b"]
        assert header.namespace_root == namespace_root(leaves) and header.leaf_count == 3
        own = _votes_for(node.sent, 1)
        assert len(own) == 3 and all(v.signer == 0 for v in own)  # one to each peer
        own[0].verify(NET.committee)

        node.hear(1, vote(1, header))
        node.hear(1, vote(1, header))  # again: a duplicate, nothing more
        assert node.att.certified_height == 0 and node.store.batch_certificate(1) is None
        node.hear(2, vote(2, header))
        cert = node.store.batch_certificate(1)
        assert cert is not None and cert.header == header
        assert [s for s, _ in cert.signatures] == [0, 1, 2]
        verify_certificate(NET.committee, cert)
        with trio.fail_after(1):
            await node.att.wait_certified(1)
        assert node.metrics.certified_height._value.get() == 1
        assert node.metrics.batch_certificates._value.get() == 1
        assert namespace_batch(node.store, 1, "rollup-a") is not None
        assert namespace_batch(node.store, 2, "rollup-a") is None

        node.hear(3, vote(3, header))  # a quorum was reached without it
        node.hear(3, CertificateRequest(1))
        assert node.sent_to(3)[-1] == CertificateReply(cert)
        node.hear(3, CertificateRequest(2))  # not opened here yet
        assert node.ignored() == {"vote-duplicate": 1, "vote-late": 1, "unknown-height": 1}

        early = header_of(NET.chain_id, batch_at(node.store, 2), batch_hash(header))
        node.hear(1, vote(1, early))  # votes may come before this node opened the block
        node.hear(2, vote(2, early))
        assert node.store.batch_certificate(2) is None
        node.decrypt(2)
        assert await node.signed(2) == early  # chained to height 1
        assert node.att.certified_height == 2
    assert node.rejected() == {}


async def test_a_validator_that_signs_two_headers_for_a_height_is_caught_and_its_second_unused(
    tmp_path: pathlib.Path,
) -> None:
    node = Node(tmp_path)
    async with running(node):
        node.decrypt(1)
        header = await node.signed(1)
        forged = replace(header, namespace_root=b"\x77" * 32)
        node.hear(1, vote(1, forged))
        node.hear(1, vote(1, header))  # the one everyone else signs, but its second
        node.hear(1, vote(1, replace(header, leaf_count=9)))  # and a third
        assert node.rejected() == {"header-equivocation": 2}
        assert node.att.equivocations == 1
        assert node.store.equivocations() == [
            (vote(1, forged).signed, vote(1, header).signed)  # both kept, as signed
        ]
        node.hear(2, vote(2, header))
        assert node.store.batch_certificate(1) is None  # 0 and 2 agree; 1's second is unused
        node.hear(3, vote(3, header))
        cert = node.store.batch_certificate(1)
        assert cert is not None and [s for s, _ in cert.signatures] == [0, 2, 3]


async def test_votes_from_the_wrong_sender_forged_for_another_chain_or_far_ahead_are_refused(
    tmp_path: pathlib.Path,
) -> None:
    node = Node(tmp_path)
    async with running(node):
        node.decrypt(1)
        header = await node.signed(1)
        node.hear(2, vote(1, header))  # 1's vote, sent by 2
        good = vote(2, header).signed
        node.hear(2, BatchVote(replace(good, signature=bytes(64))))
        node.hear(
            3, BatchVote(replace(vote(3, header).signed, statement=replace(header, height=2)))
        )
        other = replace(header, chain_id="another-chain")
        node.hear(1, BatchVote(NET.keys[1].sign(other, "another-chain", 1)))
        node.hear(1, vote(1, replace(header, height=1 + 1024 + 1)))
        assert node.rejected() == {"wrong-sender": 1, "bad-signature": 2, "wrong-chain": 1}
        assert node.ignored() == {"vote-ahead": 1}
        node.hear(1, vote(1, header))  # none of that was held against the honest votes
        node.hear(2, vote(2, header))
        assert node.att.certified_height == 1


async def test_a_certificate_reply_is_taken_only_if_valid_asked_for_and_of_our_header(
    tmp_path: pathlib.Path,
) -> None:
    node = Node(tmp_path)
    async with running(node):
        node.decrypt(1)
        header = await node.signed(1)
        other = replace(header, namespace_root=b"\x77" * 32)
        disputed = certificate(other, [1, 2, 3])  # a valid quorum, over what we did not open
        node.hear(2, CertificateReply(disputed))
        assert node.store.batch_certificate(1) is None and node.att.certified_height == 0
        assert node.store.certificate_on_file(1) is None
        assert node.store.disputed_certificates() == [disputed]
        assert node.metrics.disputed_certificates._value.get() == 1

        node.hear(2, CertificateReply(certificate(header, [1, 2])))  # short of a quorum
        node.hear(2, CertificateReply(certificate(header, [1, 3, 2])))  # not sorted
        node.hear(2, CertificateReply(certificate(replace(header, height=3), [1, 2, 3])))
        assert node.rejected() == {"short-certificate": 1, "bad-certificate": 1}
        assert node.ignored() == {"certificate-unrequested": 1}  # height 3: never signed here

        good = certificate(header, [1, 2, 3])
        node.hear(3, CertificateReply(good))
        assert node.store.batch_certificate(1) == good and node.att.certified_height == 1


async def test_a_synced_certificate_counts_once_it_matches_what_this_node_opened(
    tmp_path: pathlib.Path,
) -> None:
    node = Node(tmp_path)
    ours = header_of(NET.chain_id, batch_at(node.store, 1), genesis_batch_hash(NET.chain_id))
    wrong = certificate(replace(ours, leaf_count=7), [1, 2, 3])
    right = certificate(
        header_of(NET.chain_id, batch_at(node.store, 2), batch_hash(ours)), [1, 2, 3]
    )
    node.store.save_batch_certificate(wrong)  # as catch-up stores them: before this node opens
    node.store.save_batch_certificate(right)
    async with running(node):
        node.decrypt(1)
        await node.signed(1)  # disputed, so it still votes and collects
        assert node.store.disputed_certificates() == [wrong]
        assert node.store.certificate_on_file(1) is None and node.att.certified_height == 0
        node.decrypt(2)
        await until(lambda: node.store.header(2) is not None, 5)
        assert node.store.batch_certificate(2) == right and _votes_for(node.sent, 2) == []
        node.hear(1, vote(1, ours))
        node.hear(2, vote(2, ours))
        assert node.att.certified_height == 2  # 1 by votes, 2 as synced
    assert node.metrics.disputed_certificates._value.get() == 1


async def test_a_height_left_uncertified_is_asked_for_every_two_seconds(
    tmp_path: pathlib.Path,
) -> None:
    node = Node(tmp_path)
    async with running(node):
        node.decrypt(1)
        header = await node.signed(1)
        await trio.sleep(1.5)
        assert not any(isinstance(m, CertificateRequest) for _, m in node.sent)
        # 2 s after signing, one request per peer (checked each 0.5 s)
        await until(lambda: sum(isinstance(m, CertificateRequest) for _, m in node.sent) >= 3, 2)
        asked = [(p, m) for p, m in node.sent if isinstance(m, CertificateRequest)]
        assert sorted(asked, key=lambda x: x[0]) == [(p, CertificateRequest(1)) for p in PEERS]
        node.hear(1, vote(1, header))  # a peer answers with its vote (it has no certificate)
        node.hear(2, vote(2, header))
        assert node.att.certified_height == 1
        before = len(node.sent)
        await trio.sleep(2.1)
        assert len(node.sent) == before  # certified: nothing more to ask


async def test_a_restarted_validator_sends_the_same_vote_again_and_signs_what_it_missed(
    tmp_path: pathlib.Path,
) -> None:
    first = Node(tmp_path)
    async with running(first):
        first.decrypt(1)
        first.decrypt(2)
        header = await first.signed(2)
        one = first.store.header(1)
        assert one is not None
        first.hear(1, vote(1, one))
        first.hear(2, vote(2, one))
        assert first.att.certified_height == 1
    sent_before = _votes_for(first.sent, 2)[0]
    first.store.save_batch(batch_at(first.store, 3))  # stored, then the process died
    again = Node(tmp_path, store=first.store)
    assert again.att.certified_height == 1 and again.metrics.certified_height._value.get() == 1
    again.hear(3, CertificateRequest(2))  # no certificate yet: our vote, the very same bytes
    assert again.sent_to(3) == [BatchVote(sent_before)]
    again.hear(3, CertificateRequest(1))
    assert again.sent_to(3)[-1] == CertificateReply(first.store.batch_certificate(1))
    async with running(again):
        three = await again.signed(3)  # signed on start: the batch was stored already
        assert three.parent_batch_hash == batch_hash(header)
        again.hear(1, vote(1, header))
        again.hear(3, vote(3, header))
        assert again.att.certified_height == 2


# ---------------------------------------------------------------- four validators


async def test_every_validator_certifies_the_same_headers_and_a_deaf_one_asks_for_them(
    tmp_path: pathlib.Path,
) -> None:
    validators = make_validators(tmp_path, "attest-test")
    genesis = validators[0].genesis
    deaf = validators[3]
    txs = [encrypted(genesis, ("rollup-a", "rollup-b")[k % 2], b"tx-%d" % k) for k in range(24)]
    broken: list[str] = []

    async def watch() -> None:  # certified never runs ahead of decrypted
        while True:
            for v in validators:
                if v.certified_height > v.decrypted_height:
                    broken.append(f"{v.me}: {v.certified_height} > {v.decrypted_height}")
            await trio.sleep(0.02)

    async with trio.open_nursery() as nursery:
        for v in validators:
            await nursery.start(v.run)
        nursery.start_soon(watch)
        hear = deaf.decryption._on_attestation
        deaf.decryption._on_attestation = lambda sender, message: None  # loses every vote
        for k, data in enumerate(txs):
            assert (await validators[k % 4].submit(data)).accepted
        await until(lambda: min(_opened(v) for v in validators) == len(txs), 60)
        target = max(v.decrypted_height for v in validators)
        await until(lambda: min(v.certified_height for v in validators[:3]) >= target, 20)
        assert deaf.certified_height == 0 and deaf.store.header_tip() >= target
        deaf.decryption._on_attestation = hear
        await until(lambda: deaf.certified_height >= target, 20)  # asked its peers
        assert all(v.status()["certified_height"] >= target for v in validators)
        nursery.cancel_scope.cancel()
    assert broken == []
    height = min(v.certified_height for v in validators)
    parent = genesis_batch_hash(genesis.chain_id)
    for h in range(1, height + 1):
        headers = {v.store.header(h) for v in validators}
        assert len(headers) == 1  # every validator signed the same header
        header = headers.pop()
        assert header is not None and header.parent_batch_hash == parent
        assert header.block_hash == validators[0].store.commits(h, 1)[0].block_hash
        for v in validators:
            cert = v.store.batch_certificate(h)
            assert cert is not None and cert.header == header  # signer sets may differ
            verify_certificate(validators[0].committee, cert)
        parent = batch_hash(header)
    served = sum(v.metrics.served.labels("certificates")._value.get() for v in validators[:3])
    assert served >= 1
    for v in validators:
        assert hostile(v.metrics.registry) == {}
        assert v.store.equivocations() == [] and v.store.disputed_certificates() == []


def _opened(v: Validator) -> int:
    return sum(len(b.txs) for b in v.store.batches(1, v.store.decrypted_tip()))
