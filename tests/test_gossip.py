"""Rollup delivery over real py-libp2p GossipSub on 127.0.0.1: ids, poisoning, fetching.

Every node here is a real py-libp2p host (Noise, yamux, GossipSub) in this
process; the batches are the certified ones (and the tampered copies) of
``tests.test_subscribe``. What must hold whatever a peer sends: a forged copy
that shares an honest batch's message id cannot keep the honest copy out, a
fetch server whose answer does not verify is named and never asked again,
and a validator answers no malformed fetch request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import ValidationCache

from delivery.batch import NamespaceBatch, build_namespace_batch, verify_namespace_batch
from delivery.gossip import (
    FETCH,
    MAX_RANGE,
    UNDECODABLE_DOMAIN,
    BatchRangeReply,
    BatchRangeRequest,
    batch_topic,
    message_id,
)
from delivery.header import BatchCertificate
from p2p.framing import FrameReader, frame
from p2p.gossip import Gossip
from p2p.host import FETCH_PROTOCOL, noise_host
from p2p.peer import EPHEMERAL, GossipPeer, peer_info
from sequencer_net.base import codec
from sequencer_net.base.signing import sign_bytes
from sequencer_net.client import ClientError
from sequencer_net.client.gossip import GossipFeed, GossipOptions
from sequencer_net.client.subscribe import Subscription
from sequencer_net.node import genesis as gen
from sequencer_net.node.batches import CertifiedBatches
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.publisher import BatchPublisher
from sequencer_net.node.storage import Store
from tests.test_p2p import wait_for
from tests.test_subscribe import (
    CHAIN,
    GENESIS,
    HONEST,
    KEYS,
    NS,
    assert_the_chain,
    leaves_at,
    payloads,
    take,
    tampered,
)

TOPIC = batch_topic(NS)
COMMITTEE = GENESIS.committee()


# --- message ids -----------------------------------------------------------------------------


def signed_by(batch: NamespaceBatch, signers: tuple[int, ...]) -> NamespaceBatch:
    """``batch`` with its header certified by another quorum of the genesis validators."""
    header = batch.certificate.header
    message = sign_bytes(header, header.chain_id)
    signatures = tuple((i, KEYS[i].signing_key.sign_raw(message)) for i in signers)
    return dataclasses.replace(batch, certificate=BatchCertificate(header, signatures))


def test_message_id_names_the_certified_batch_not_the_bytes() -> None:
    """Validators' copies differ in their quorum: the network must still carry a height once."""
    ours, theirs = CHAIN[2], signed_by(CHAIN[2], (1, 2, 3))
    for copy in (ours, theirs):  # both genuine, so both are published by honest validators
        assert verify_namespace_batch(COMMITTEE, copy, NS).height == 3
    assert codec.encode(ours) != codec.encode(theirs)
    assert message_id(codec.encode(ours)) == message_id(codec.encode(theirs))
    assert message_id(tampered(3)) == message_id(HONEST[3])  # why a forgery can collide

    other_namespace = build_namespace_batch(CHAIN[2].certificate, leaves_at(3), "rollup-b")
    ids = {message_id(HONEST[h]) for h in HONEST} | {message_id(codec.encode(other_namespace))}
    assert len(ids) == len(HONEST) + 1


def test_undecodable_bytes_get_an_id_of_their_own_and_never_raise() -> None:
    """py-libp2p computes the id before validating: a hostile message must not crash it."""
    known = {message_id(HONEST[h]) for h in HONEST}
    honest = HONEST[3]
    samples = [b"", b"\xa0garbage", b"\xff" * 40, honest + b"\x00"]
    samples += [honest[:cut] for cut in range(1, len(honest))]  # every truncation
    ids = [message_id(data) for data in samples]
    assert len(set(ids)) == len(samples) and not known & set(ids)
    garbage = b"\xa0garbage"
    assert message_id(garbage) == hashlib.sha256(UNDECODABLE_DOMAIN + garbage).digest()


# --- gossip: a forged copy sharing the honest batch's id ------------------------------------


@asynccontextmanager
async def running(*peers: GossipPeer) -> AsyncIterator[None]:
    """Run ``peers`` in order (the ones dialled first) until the block ends.

    A failure in the block comes out as itself, not ten nurseries deep in groups.
    """
    try:
        async with AsyncExitStack() as stack:
            for peer in peers:
                await stack.enter_async_context(peer.running())
            yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


@dataclasses.dataclass
class Follower:
    """A subscriber validating with ``GossipFeed.offer``; ``delivered`` is what py-libp2p let in."""

    peer: GossipPeer
    feed: GossipFeed
    delivered: list[bytes] = dataclasses.field(default_factory=list)

    async def collect(self, subscription: Any) -> None:
        while True:
            self.delivered.append((await subscription.get()).data)

    def got(self) -> list[str]:
        """What was delivered, readably: ``honest 3`` or ``forged 1``."""
        honest = {data: f"honest {h}" for h, data in HONEST.items()}
        forged = {tampered(h): f"forged {h}" for h in HONEST if CHAIN[h - 1].leaves}
        return [honest.get(data) or forged.get(data, "other") for data in self.delivered]


@asynccontextmanager
async def follower(
    publishers: list[GossipPeer], *, verdict_cache: bool = False
) -> AsyncIterator[Follower]:
    """A subscriber of ``TOPIC`` dialling ``publishers``, known to each of them as one.

    ``verdict_cache``: put py-libp2p's per-message-id validation cache back.
    """
    peer = GossipPeer([peer_info(p.address) for p in publishers], message_id)
    if verdict_cache:
        peer.gossip.pubsub.validation_cache = ValidationCache()
    me = Follower(peer, GossipFeed(COMMITTEE, NS))
    async with peer.running(), trio.open_nursery() as nursery:
        nursery.start_soon(me.collect, await peer.gossip.subscribe(TOPIC, me.feed.offer))
        for p in publishers:
            await wait_for(lambda p=p: peer.host.get_id() in p.gossip.subscribers(TOPIC))
        yield me
        nursery.cancel_scope.cancel()


async def publish(publisher: GossipPeer, data: bytes) -> None:
    assert await publisher.gossip.publish(TOPIC, data)


async def forged_then_honest(me: Follower, forger: GossipPeer, validator: GossipPeer) -> None:
    """The forger's copy of height 1 first (refused), then a validator's honest one."""
    await publish(forger, tampered(1))
    await wait_for(lambda: sum(me.feed.refused.values()) >= 1)
    await publish(validator, HONEST[1])


async def test_a_forged_copy_with_the_honest_id_does_not_keep_the_honest_copy_out() -> None:
    """One forger would otherwise silence a height for everyone behind a subscriber."""
    forger = GossipPeer([], message_id)
    validator = GossipPeer([], message_id)
    async with running(forger, validator), follower([forger, validator]) as me:
        await forged_then_honest(me, forger, validator)
        await wait_for(lambda: HONEST[1] in me.delivered)
        assert me.got() == ["honest 1"]
        assert set(me.feed.refused) == {"bad-proof"}
        batch = me.feed.take(1)
        assert batch is not None and [leaf.plaintext for leaf in batch.leaves] == payloads(1)


async def test_with_py_libp2p_verdict_cache_the_forgery_wins() -> None:
    """Why ``p2p.gossip`` drops the cache: the honest copy is refused on the forgery's verdict."""
    forger = GossipPeer([], message_id)
    validator = GossipPeer([], message_id)
    async with (
        running(forger, validator),
        follower([forger, validator], verdict_cache=True) as me,
    ):
        await forged_then_honest(me, forger, validator)
        await publish(validator, HONEST[2])  # a later message from the same validator
        await wait_for(lambda: HONEST[2] in me.delivered)
        await trio.sleep(0.3)  # height 1 was sent first on the same connection
        assert me.got() == ["honest 2"] and 1 not in me.feed.batches
        assert me.feed.refused == Counter({"bad-proof": 1})  # the validator never saw it


async def test_a_copy_spoofing_a_validators_sequence_number_cannot_rename_its_message() -> None:
    """An unsigned message costs nothing to send; it must not decide what a signed one is."""
    attacker = GossipPeer([], message_id)
    validator = GossipPeer([], message_id)
    async with running(attacker, validator), follower([attacker, validator]) as me:
        await publish(validator, HONEST[1])
        await wait_for(lambda: HONEST[1] in me.delivered)
        next_seqno = validator.gossip.pubsub.counter + 1  # py-libp2p: +1 per message
        spoof = rpc_pb2.Message(
            from_id=validator.host.get_id().to_bytes(),
            seqno=next_seqno.to_bytes(8, "big"),
            data=HONEST[1],  # already seen: whatever carries its id is dropped unvalidated
            topicIDs=[TOPIC],
            signature=bytes(64),
        )
        attacker.gossip.router.send_rpc(me.peer.host.get_id(), rpc_pb2.RPC(publish=[spoof]))
        await publish(attacker, HONEST[5])  # sent after the spoof on the same connection
        await wait_for(lambda: HONEST[5] in me.delivered)
        await trio.sleep(0.2)
        await publish(validator, HONEST[2])  # carries next_seqno
        await publish(validator, HONEST[3])
        await wait_for(lambda: HONEST[3] in me.delivered)
        await trio.sleep(0.3)
        assert sorted(me.got()) == ["honest 1", "honest 2", "honest 3", "honest 5"]


# --- fetching missed heights from servers that lie -----------------------------------------


def honest_reply(request: BatchRangeRequest, most: int = MAX_RANGE) -> bytes:
    last = min(len(CHAIN), request.from_height + min(request.limit, most) - 1)
    batches = tuple(CHAIN[h - 1] for h in range(request.from_height, last + 1))
    return FETCH.encode(BatchRangeReply(batches, len(CHAIN)))


def tampered_reply(request: BatchRangeRequest) -> bytes:
    first: NamespaceBatch = codec.decode(NamespaceBatch, tampered(request.from_height))
    return FETCH.encode(BatchRangeReply((first, *CHAIN[request.from_height :]), len(CHAIN)))


class FetchServer:
    """A libp2p node serving ``/seqnet/batch-fetch/1`` with ``answer`` (None: reset)."""

    def __init__(self, answer: Callable[[BatchRangeRequest], bytes | None]) -> None:
        self.peer = GossipPeer([], message_id)
        self.answer = answer
        self.asked: list[int] = []  # from_height of each request
        self.peer.host.set_stream_handler(FETCH_PROTOCOL, self._serve)

    @property
    def address(self) -> str:
        return self.peer.address

    async def _serve(self, stream: Any) -> None:
        request = FETCH.decode(await FrameReader(stream).next() or b"")
        assert isinstance(request, BatchRangeRequest) and request.namespace == NS
        self.asked.append(request.from_height)
        answer = self.answer(request)
        if answer is None:
            await stream.reset()
            return
        await stream.write(frame(answer))
        await stream.close()


def gossip_subscription(*servers: FetchServer) -> Subscription:
    """Follow ``NS`` from height 1 over gossip with no publisher: every height is fetched."""
    addresses = [s.address for s in servers]
    options = GossipOptions(peers=addresses, fetch_from=addresses)
    return Subscription(GENESIS, NS, 1, [], carrier="gossip", gossip=options)


async def test_a_lying_fetch_server_is_named_and_never_asked_again() -> None:
    """Fetched heights are verified like gossiped ones; a liar is dropped, not retried."""
    liar = FetchServer(tampered_reply)
    honest = FetchServer(lambda request: honest_reply(request, most=4))
    async with running(liar.peer, honest.peer):
        sub = gossip_subscription(liar, honest)
        got = await take(sub, len(CHAIN))
    assert_the_chain(got)
    assert sub.bad_nodes == {liar.address: "bad-proof"}
    assert liar.asked == [1] and honest.asked == [1, 5]  # 5: the liar was skipped
    assert sub.delivered == Counter({"fetch": len(CHAIN)})


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param(lambda request: b"\xa0garbage", "decode", id="garbage"),
        pytest.param(lambda request: FETCH.encode(request), "decode", id="a-request"),
        pytest.param(
            lambda request: FETCH.encode(BatchRangeReply(tuple(CHAIN[1:]), len(CHAIN))),
            "out-of-order",
            id="from-another-height",
        ),
        pytest.param(lambda request: None, None, id="reset"),  # proves nothing: not named
    ],
)
async def test_a_fetch_server_that_does_not_answer_a_batch_is_named_with_why(
    answer: Callable[[BatchRangeRequest], bytes | None], reason: str | None
) -> None:
    """What a server answers decides whether it is named; the honest one carries on."""
    odd = FetchServer(answer)
    honest = FetchServer(honest_reply)
    async with running(odd.peer, honest.peer):
        sub = gossip_subscription(odd, honest)
        got = await take(sub, 3)
    assert_the_chain(got)
    assert sub.bad_nodes == ({} if reason is None else {odd.address: reason})
    assert odd.asked == [1] and honest.asked == [1]


async def test_when_every_fetch_server_lied_the_error_is_a_client_error() -> None:
    """``Subscription.batches`` promises the ClientError itself, as the other carriers give it."""
    liar = FetchServer(lambda request: b"\xa0garbage")
    async with running(liar.peer):
        sub = gossip_subscription(liar)
        with pytest.raises(ClientError, match="no node left"):
            await take(sub, 1)
    assert sub.bad_nodes == {liar.address: "decode"}


# --- a validator's fetch server and malformed requests -------------------------------------


LONG_NAMESPACE = "🦀" * 64  # the genesis allows 64 characters, 256 bytes of UTF-8


def publisher(tmp_path: pathlib.Path) -> BatchPublisher:
    """A validator's publisher over a real (empty) store: nothing certified yet."""
    batches = CertifiedBatches(Store(tmp_path / "node.db", GENESIS.chain_id))

    async def never(height: int) -> None:
        await trio.sleep_forever()

    gossip = Gossip(noise_host(os.urandom(32), EPHEMERAL), message_id)
    namespaces = [NS, LONG_NAMESPACE]
    return BatchPublisher(gossip, batches, namespaces, lambda: 0, never, NodeMetrics())


def sample(metrics: NodeMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("request_bytes", "metric", "reason"),
    [
        pytest.param(b"\xa0garbage", "rejected", "malformed", id="garbage"),
        pytest.param(b"", "rejected", "malformed", id="empty"),
        pytest.param(
            FETCH.encode(BatchRangeRequest(NS, 1, 0)), "rejected", "malformed", id="limit-0"
        ),
        pytest.param(
            FETCH.encode(BatchRangeRequest(NS, 1, MAX_RANGE + 1)),
            "rejected",
            "malformed",
            id="limit-over-max",
        ),
        pytest.param(
            FETCH.encode(BatchRangeRequest(NS, 0, 1)), "rejected", "malformed", id="height-0"
        ),
        pytest.param(
            FETCH.encode(BatchRangeRequest("r" * 300, 1, 1)), "rejected", "malformed", id="oversize"
        ),
        pytest.param(
            FETCH.encode(BatchRangeReply((), 0)), "rejected", "not-a-request", id="a-reply"
        ),
        pytest.param(
            FETCH.encode(BatchRangeRequest("rollup-z", 1, 1)),
            "ignored",
            "unknown-namespace",
            id="unknown-namespace",
        ),
    ],
)
async def test_a_malformed_fetch_request_gets_no_answer_and_is_counted(
    tmp_path: pathlib.Path, request_bytes: bytes, metric: str, reason: str
) -> None:
    """Any libp2p program may ask: what breaks the protocol is refused, and counted as such."""
    node = publisher(tmp_path)
    assert await node.answer(request_bytes) is None
    name = f"seqnet_messages_{metric}_total"
    assert sample(node.metrics, name, protocol="batch-fetch", reason=reason) == 1
    assert sample(node.metrics, "seqnet_requests_served_total", kind="batch-fetch") == 0


async def test_a_well_formed_fetch_request_is_answered_even_with_nothing_certified(
    tmp_path: pathlib.Path,
) -> None:
    """An empty reply tells the subscriber how far this node is (the contrast to the above)."""
    node = publisher(tmp_path)
    answer = await node.answer(FETCH.encode(BatchRangeRequest(NS, 1, MAX_RANGE)))
    assert answer is not None and FETCH.decode(answer) == BatchRangeReply((), 0)
    assert sample(node.metrics, "seqnet_requests_served_total", kind="batch-fetch") == 1


async def test_a_request_for_the_longest_namespace_the_genesis_allows_is_answered(
    tmp_path: pathlib.Path,
) -> None:
    """Whatever name a rollup registered, its subscribers must be able to fetch it."""
    gen.create(4, chain_id="long-namespace", namespaces=(LONG_NAMESPACE,))  # no GenesisError
    node = publisher(tmp_path)
    answer = await node.answer(FETCH.encode(BatchRangeRequest(LONG_NAMESPACE, 1, MAX_RANGE)))
    malformed = {"protocol": "batch-fetch", "reason": "malformed"}
    assert sample(node.metrics, "seqnet_messages_rejected_total", **malformed) == 0
    assert answer is not None and FETCH.decode(answer) == BatchRangeReply((), 0)
