"""Following a rollup: its certified batches, every height in order, verified from the genesis.

A rollup trusts no node. Each message a node sends is a ``NamespaceBatch``:
the quorum certificate over one height's batch header and the rollup's
transactions with a proof that they are exactly its slice of that batch
(``delivery.batch``). :class:`Subscription` checks every one against the
committee of the genesis, that it is the height it needs next (no gap, no
duplicate: else ``out-of-order``) and that its header extends the previous one
(``parent_batch_hash``, else ``broken-chain``; at height 1 the genesis batch
hash). Only then is it handed on.

Nodes are interchangeable carriers. On a disconnect, an error, or a node that
sends nothing new for ``stall_s`` (it may be withholding), the subscription
resumes from the height it needs on the next node, round-robin, after a short
backoff. A node that serves anything that does not verify is recorded in
``bad_nodes`` with the reason and not used again; when no node is left the
subscription raises :class:`ClientError` naming them all.

Three carriers: ``websocket`` (``/v1/namespaces/{ns}/stream?from=H``, the node
pushes every height), ``http`` (``GET /v1/namespaces/{ns}/batches/{h}``,
polled; :func:`fetch_batch` is its one-shot form) and ``gossip`` (the
namespace's libp2p topic, missed heights fetched from validators:
``sequencer_net.client.gossip``). ``delivered`` counts the heights handed on
by how they came.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Literal

import trio
import trio_websocket

from delivery.batch import (
    NamespaceBatch,
    VerifiedBatch,
    decode_namespace_batch,
    verify_namespace_batch,
)
from delivery.header import Unverified, genesis_batch_hash
from sequencer_net.base import codec
from sequencer_net.base.committee import Committee
from sequencer_net.client.gossip import GossipCarrier, GossipOptions
from sequencer_net.client.http import ClientError, get_cbor, in_thread
from sequencer_net.node.genesis import Genesis

log = logging.getLogger("seqnet.subscribe")

Carrier = Literal["websocket", "http", "gossip"]
CARRIERS: tuple[Carrier, ...] = ("websocket", "http", "gossip")
STALL_S = 10.0  # a node that sends no new height for this long: resume on another
BACKOFF_S = (0.1, 2.0)  # first and longest pause after a failed attempt (doubling)
POLL_S = 0.2  # http carrier: between requests for a height not certified yet
CONNECT_TIMEOUT_S = 5.0
FETCH_TIMEOUT_S = 5.0


def stream_path(namespace: str, from_height: int) -> str:
    """The WebSocket resource of a namespace stream starting at ``from_height``."""
    return f"/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/stream?from={from_height}"


def batch_path(namespace: str, height: int) -> str:
    """The HTTP resource of one height's namespace batch."""
    return f"/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/batches/{height}"


def check_batch(
    committee: Committee,
    namespace: str,
    data: bytes | NamespaceBatch,
    height: int,
    parent: bytes | None,
) -> VerifiedBatch:
    """``data`` verified as ``namespace``'s batch at ``height``, extending ``parent`` if known.

    Raises :class:`delivery.header.Unverified`: ``out-of-order`` for another
    height, ``broken-chain`` if the header's parent is not ``parent``, or
    whatever ``verify_namespace_batch`` finds.
    """
    batch = decode_namespace_batch(data) if isinstance(data, bytes) else data
    served = batch.certificate.header.height
    if served != height:
        raise Unverified("out-of-order", f"height {served} where {height} was due")
    verified = verify_namespace_batch(committee, batch, namespace, height=height)
    if parent is not None and verified.header.parent_batch_hash != parent:
        raise Unverified("broken-chain", f"height {height} does not extend the batch before it")
    return verified


async def fetch_batch(
    genesis: Genesis, namespace: str, height: int, node: str, timeout_s: float = FETCH_TIMEOUT_S
) -> VerifiedBatch:
    """``namespace``'s batch at ``height`` from ``node`` (host:port), verified from the genesis.

    Raises :class:`ClientError` if the node does not answer or refuses (status
    404: not certified yet), :class:`delivery.header.Unverified` if what it
    serves does not verify.
    """
    data = await _get_cbor(node, batch_path(namespace, height), timeout_s)
    return check_batch(genesis.committee(), namespace, data, height, None)


class Subscription:
    """``namespace``'s verified batches from ``from_height`` on, from any of ``nodes``.

    Use as ``async with sub.batches() as batches: async for batch in batches``
    (or :func:`subscribe`). ``next_height`` is the height after the last batch
    the reader took, and ``bad_nodes`` maps each node caught serving something
    that does not verify to the reason; a later ``batches()`` carries on from
    there.
    """

    def __init__(
        self,
        genesis: Genesis,
        namespace: str,
        from_height: int,
        nodes: Sequence[str],
        *,
        carrier: Carrier = "websocket",
        stall_s: float = STALL_S,
        gossip: GossipOptions | None = None,
    ) -> None:
        """``nodes``: API addresses (host:port), needed by every carrier but gossip."""
        if namespace not in genesis.namespaces:
            registered = ", ".join(genesis.namespaces)
            raise ValueError(f"rollup {namespace!r} is not registered (registered: {registered})")
        if from_height < 1:
            raise ValueError(f"heights start at 1, not {from_height}")
        if not nodes and carrier != "gossip":
            raise ValueError("no node to subscribe to")
        for node in nodes:
            _host_port(node)  # ValueError now rather than a retry forever
        if carrier not in CARRIERS:
            raise ValueError(f"carrier must be one of {', '.join(CARRIERS)}, not {carrier!r}")
        self.genesis = genesis
        self.committee = genesis.committee()
        self.namespace = namespace
        self.nodes = tuple(dict.fromkeys(nodes))
        self.carrier = carrier
        self.stall_s = stall_s
        self.next_height = from_height
        self.parent = genesis_batch_hash(genesis.chain_id) if from_height == 1 else None
        self.bad_nodes: dict[str, str] = {}
        self.delivered: Counter[str] = Counter()  # heights handed on, by how they came
        self._turn = 0
        options = gossip or GossipOptions()
        self.gossip = GossipCarrier(self, options) if carrier == "gossip" else None

    @asynccontextmanager
    async def batches(self) -> AsyncIterator[trio.MemoryReceiveChannel[VerifiedBatch]]:
        """The verified batches as a channel, fed by a task that lives as long as the ``with``.

        A :class:`ClientError` (no node left) comes out of the ``async for``'s
        ``with`` as itself, not in an exception group.
        """
        send, receive = trio.open_memory_channel[VerifiedBatch](0)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run, send)
                yield receive
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def accept(self, node: str, data: bytes | str | NamespaceBatch) -> VerifiedBatch | None:
        """The batch due next if ``data`` is it; else None, with ``node`` marked bad."""
        try:
            if isinstance(data, str):
                raise Unverified("decode", "a text message")
            batch = check_batch(self.committee, self.namespace, data, self.next_height, self.parent)
        except Unverified as exc:
            self.condemn(node, exc)
            return None
        return batch

    def condemn(self, node: str, exc: Unverified) -> None:
        """Record that ``node`` served something that does not verify: it is not used again."""
        self.bad_nodes[node] = exc.reason
        log.warning(
            "%s served something that does not verify at height %d (%s); not using it again",
            node,
            self.next_height,
            exc,
            extra={"fields": {"node": node, "height": self.next_height, "reason": exc.reason}},
        )

    def extends(self, batch: VerifiedBatch) -> bool:
        """Whether a verified batch of the height due extends the last one handed on."""
        return self.parent is None or batch.header.parent_batch_hash == self.parent

    async def hand_on(
        self, batch: VerifiedBatch, send: trio.MemorySendChannel[VerifiedBatch], via: str
    ) -> None:
        """Give ``batch`` to the reader; only once it has it is the next height due.

        The channel holds nothing, so a cancelled send delivered nothing and a
        finished one delivered: a later ``batches()`` resumes exactly after the
        last batch the reader took.
        """
        await send.send(batch)
        self.delivered[via] += 1
        self.next_height = batch.height + 1
        self.parent = batch.batch_hash

    def next_node(self) -> str:
        """The next node, round-robin, that served nothing unverified; ClientError if none."""
        return self.next_good(self.nodes)

    def next_good(self, candidates: Sequence[str]) -> str:
        """The next of ``candidates``, round-robin, not in ``bad_nodes``; ClientError if none."""
        for _ in range(len(candidates)):
            node = candidates[self._turn % len(candidates)]
            self._turn += 1
            if node not in self.bad_nodes:
                return node
        raise self.no_node_left()

    def no_node_left(self) -> ClientError:
        """The error that ends a subscription once every node served something unverified."""
        bad = ", ".join(f"{node} ({reason})" for node, reason in self.bad_nodes.items())
        return ClientError(
            f"no node left to follow {self.namespace} from height {self.next_height}: "
            f"each served a batch that does not verify: {bad}"
        )

    async def _run(self, send: trio.MemorySendChannel[VerifiedBatch]) -> None:
        """Every height from ``next_height`` on, one node after another, into ``send``."""
        if self.gossip is not None:
            return await self.gossip.follow(send)
        pause = BACKOFF_S[0]
        while True:
            node = self.next_node()
            follow = self._follow_websocket if self.carrier == "websocket" else self._poll
            height, bad = self.next_height, len(self.bad_nodes)
            try:
                await follow(node, send)
            except (
                trio_websocket.HandshakeError,
                trio_websocket.ConnectionClosed,
                ClientError,
                OSError,
            ) as exc:
                _resume(node, self.next_height, _describe(exc))
            if self.next_height > height:
                pause = BACKOFF_S[0]
            elif len(self.bad_nodes) == bad:
                await trio.sleep(pause)
                pause = min(pause * 2, BACKOFF_S[1])

    async def _follow_websocket(
        self, node: str, send: trio.MemorySendChannel[VerifiedBatch]
    ) -> None:
        """Batches from one node's stream until it closes, stalls or serves a bad one."""
        host, port = _host_port(node)
        async with trio_websocket.open_websocket(
            host,
            port,
            stream_path(self.namespace, self.next_height),
            use_ssl=False,
            max_message_size=codec.MAX_MESSAGE_BYTES,
            connect_timeout=CONNECT_TIMEOUT_S,
            disconnect_timeout=CONNECT_TIMEOUT_S,
        ) as ws:
            while True:
                with trio.move_on_after(self.stall_s) as idle:
                    message = await ws.get_message()
                if idle.cancelled_caught:
                    _resume(node, self.next_height, f"nothing new for {self.stall_s:g}s")
                    return
                batch = self.accept(node, message)
                if batch is None:
                    return
                await self.hand_on(batch, send, self.carrier)

    async def _poll(self, node: str, send: trio.MemorySendChannel[VerifiedBatch]) -> None:
        """Batches polled from one node until it fails, stalls or serves a bad one."""
        stalled = trio.current_time() + self.stall_s
        while True:
            try:
                data = await _get_cbor(node, batch_path(self.namespace, self.next_height))
            except ClientError as exc:
                if exc.status != 404:
                    raise
                if trio.current_time() > stalled:
                    _resume(node, self.next_height, f"nothing new for {self.stall_s:g}s")
                    return
                await trio.sleep(POLL_S)
                continue
            batch = self.accept(node, data)
            if batch is None:
                return
            await self.hand_on(batch, send, self.carrier)
            stalled = trio.current_time() + self.stall_s


def subscribe(
    genesis: Genesis,
    namespace: str,
    from_height: int,
    nodes: Sequence[str],
    *,
    carrier: Carrier = "websocket",
    stall_s: float = STALL_S,
    gossip: GossipOptions | None = None,
) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[VerifiedBatch]]:
    """``async with subscribe(...) as batches: async for batch in batches``.

    See :class:`Subscription`.
    """
    return Subscription(
        genesis, namespace, from_height, nodes, carrier=carrier, stall_s=stall_s, gossip=gossip
    ).batches()


def _resume(node: str, height: int, why: str) -> None:
    log.info(
        "%s: %s; resuming from height %d on the next node",
        node,
        why,
        height,
        extra={"fields": {"node": node, "height": height, "why": why}},
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio_websocket.ConnectionClosed) and exc.reason is not None:
        return f"closed {exc.reason.code} {exc.reason.reason or exc.reason.name}"
    if isinstance(exc, trio_websocket.ConnectionRejected):
        return f"refused the stream: HTTP {exc.status_code}"
    if isinstance(exc, trio_websocket.ConnectionTimeout):
        return f"no answer within {CONNECT_TIMEOUT_S:g}s"
    if isinstance(exc, trio_websocket.HandshakeError) and exc.__cause__ is not None:
        return f"cannot connect: {exc.__cause__}"
    return str(exc) or type(exc).__name__


def _host_port(node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{node!r}: expected host:port")
    return host.strip("[]"), int(port)


async def _get_cbor(address: str, path: str, timeout_s: float = FETCH_TIMEOUT_S) -> bytes:
    """GET http://address/path asking for CBOR, in a thread; ClientError on any failure."""
    return await in_thread(get_cbor, address, path, codec.MAX_MESSAGE_BYTES, timeout_s)
