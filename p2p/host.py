"""The validator's libp2p host: Noise-only, validators-only direct streams of frames.

Theory of operation
-------------------
Each validator's ed25519 seed is also its libp2p identity, so a connection's
authenticated peer id tells us which validator (if any) is on the other end.
The host offers only Noise (no plaintext, TLS or secio) and dials with one
connection per peer (which also avoids py-libp2p's 250 ms dial delay). On
``/seqnet/consensus/1`` every inbound stream from a peer id that is not in the
genesis is reset and counted; a validator's stream is read as length-prefixed
frames and each frame is handed to ``on_frame(protocol, sender_index, bytes)``.
The same holds for the other validator-to-validator protocols (transactions,
decryption shares). Outbound, one persistent stream per peer and protocol is
opened lazily and reused. ``/seqnet/sync/1`` and ``/seqnet/batch-fetch/1``
are request/response (one frame each way on a fresh stream), open to any
peer, a few at a time. Frames are opaque here: decoding and validation belong
to the node.

The host also runs GossipSub (``p2p.gossip``), on which a validator publishes
rollups' batches to whoever subscribed; it subscribes to nothing itself.

Every stream of our own protocols, in both directions, starts with the
genesis hello (``p2p.hello``): a peer whose genesis digest differs is reset
before any frame and counted as ``genesis-mismatch``. The batch fetch is the
exception: it is meant for any libp2p program, which verifies what it gets
against its own genesis anyway. Inbound connections are
admitted by ``p2p.slots``: validators always find room, outsiders and
connections still in the handshake cannot crowd them out, and a failed dial
never keeps a validator away (py-libp2p's negative cache is lifted first).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport

from p2p.faults import FaultyLinks
from p2p.framing import FrameError, FrameReader, frame
from p2p.gossip import Gossip, MessageId, content_id
from p2p.hello import GenesisMismatch, committee_id, exchange_hello, hello_frame
from p2p.slots import InboundSlots, forget_failed_dial

CONSENSUS_PROTOCOL = TProtocol("/seqnet/consensus/1")
TX_PROTOCOL = TProtocol("/seqnet/tx/1")
SHARES_PROTOCOL = TProtocol("/seqnet/shares/1")
SYNC_PROTOCOL = TProtocol("/seqnet/sync/1")
VALIDATOR_PROTOCOLS = (CONSENSUS_PROTOCOL, TX_PROTOCOL, SHARES_PROTOCOL)
FETCH_PROTOCOL = TProtocol("/seqnet/batch-fetch/1")
MAX_SERVING = 4  # concurrent requests served per request/response protocol; more wait
REQUEST_TIMEOUT_S = 10.0
log = logging.getLogger("seqnet.p2p")

OnFrame = Callable[[str, int, bytes], Awaitable[None]]
ServeRequest = Callable[[bytes], Awaitable[bytes | None]]


MAX_CONNECTIONS = 1024  # a backstop only: p2p.slots decides who gets in, well below this
TIMEOUT_S = 5.0


def connection_limits() -> ConnectionConfig:
    """py-libp2p's defaults, made explicit and tightened for a small committee.

    One connection per peer (also avoids the 250 ms dial delay); no
    auto-connector (its default low watermark of 100 re-dials every known peer
    every 30 s); connection caps far above what ``p2p.slots`` admits, so
    py-libp2p never refuses a validator for lack of room and never prunes;
    5 s for dials, upgrades and protocol negotiation instead of 10.
    """
    return ConnectionConfig(
        max_connections=MAX_CONNECTIONS,
        max_connections_per_peer=1,
        min_connections=0,
        low_watermark=0,
        high_watermark=MAX_CONNECTIONS,
        dial_timeout=TIMEOUT_S,
        inbound_upgrade_timeout=TIMEOUT_S,
        outbound_upgrade_timeout=TIMEOUT_S,
        outbound_stream_protocol_negotiation_timeout=TIMEOUT_S,
        inbound_stream_protocol_negotiation_timeout=TIMEOUT_S,
    )


def noise_host(seed: bytes, listen: str) -> Any:
    """A py-libp2p host named by the ed25519 ``seed`` that speaks only Noise (never plaintext)."""
    key_pair = create_new_key_pair(seed)
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        connection_config=connection_limits(),
        listen_addrs=[multiaddr.Multiaddr(listen)],
    )


class ValidatorHost:
    """One validator's host; ``peers[i]`` is validator i's (peer id, multiaddr)."""

    def __init__(
        self,
        seed: bytes,
        me: int,
        peers: Sequence[tuple[str, str]],
        on_frame: OnFrame,
        listen: str = "/ip4/127.0.0.1/tcp/0",
        serve_sync: ServeRequest | None = None,
        on_reject: Callable[[str, str], None] | None = None,
        on_ignore: Callable[[str, str], None] | None = None,
        genesis_id: bytes | None = None,
        on_shed: Callable[[str], None] = lambda reason: None,
        serve_fetch: ServeRequest | None = None,
        gossip_id: MessageId = content_id,
    ) -> None:
        """``genesis_id``: the genesis digest peers must share; by default the peer ids'.
        ``on_shed``: an inbound connection was closed to keep room (see ``p2p.slots``).
        ``serve_fetch``: answers ``/seqnet/batch-fetch/1`` requests, from any peer.
        ``gossip_id``: names a gossiped message (``p2p.gossip``)."""
        self.host = noise_host(seed, listen)
        self.gossip = Gossip(self.host, gossip_id)
        self.me, self._on_frame, self._listen = me, on_frame, listen
        self._genesis_id = genesis_id
        self.set_peers(peers)
        self._outbound: dict[tuple[int, str], Any] = {}
        self.faults: FaultyLinks | None = None  # see inject_faults
        self._locks: dict[tuple[int, str], trio.Lock] = {}
        self.rejected: Counter[str] = Counter()  # the peer broke the protocol
        self.ignored: Counter[str] = Counter()  # not served, though the peer may be honest
        for protocol in VALIDATOR_PROTOCOLS:
            self.host.set_stream_handler(protocol, self._acceptor(protocol))
        self._serve_sync, self._on_reject, self._on_ignore = serve_sync, on_reject, on_ignore
        self.host.set_stream_handler(
            SYNC_PROTOCOL, self._answerer(SYNC_PROTOCOL, serve_sync, greet=True)
        )
        self.host.set_stream_handler(
            FETCH_PROTOCOL, self._answerer(FETCH_PROTOCOL, serve_fetch, greet=False)
        )
        self.slots = InboundSlots(self.host.get_network(), self._is_validator, on_shed=on_shed)
        self.slots.install()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Gossip and listen while the block runs; cancel it to stop."""
        async with (
            self.gossip.running(),
            self.host.run([multiaddr.Multiaddr(self._listen)]),
            trio.open_nursery() as nursery,
        ):
            if self.faults is not None:
                nursery.start_soon(self.faults.run)
            yield
            nursery.cancel_scope.cancel()

    def set_peers(self, peers: Sequence[tuple[str, str]]) -> None:
        """Validator i's (peer id, multiaddr): from genesis, or once test hosts listen."""
        self.peers = list(peers)
        self._index_of = {peer_id: i for i, (peer_id, _) in enumerate(self.peers)}
        ids = [peer_id for peer_id, _ in self.peers]
        self._hello = hello_frame(self._genesis_id or committee_id(ids))

    def _is_validator(self, peer: ID) -> bool:
        return str(peer) in self._index_of

    @property
    def address(self) -> str:
        return str(self.host.get_addrs()[0])

    # ------------------------------------------------------------ inbound

    def _reject(self, protocol: str, reason: str) -> None:
        """Count input that breaks the protocol here and in the node's metrics."""
        self.rejected[reason] += 1
        if self._on_reject is not None:
            self._on_reject(protocol, reason)

    def _ignore(self, protocol: str, reason: str) -> None:
        """Count input dropped through no proven fault of the peer (a reset, a timeout)."""
        self.ignored[reason] += 1
        if self._on_ignore is not None:
            self._on_ignore(protocol, reason)

    def connected_peers(self) -> int:
        return len(self.host.get_connected_peers())

    def connected_validators(self) -> int:
        """Other validators among the connected peers (outsiders, e.g. rollups, excluded)."""
        return sum(1 for peer in self.host.get_connected_peers() if self._is_validator(peer))

    def _acceptor(self, protocol: str) -> Callable[[Any], Awaitable[None]]:
        async def accept(stream: Any) -> None:
            await self._accept(protocol, stream)

        return accept

    async def _accept(self, protocol: str, stream: Any) -> None:
        peer = str(stream.muxed_conn.peer_id)
        sender = self._index_of.get(peer)
        if sender is None or sender == self.me:
            self._reject(protocol, "not-a-validator")
            log.warning("refused %s stream from %s: not in genesis", protocol, peer)
            await stream.reset()
            return
        reader = FrameReader(stream)
        try:
            if not await self._greet(protocol, stream, reader):
                return
            while (data := await reader.next()) is not None:
                await self._on_frame(protocol, sender, data)
        except FrameError as exc:
            self._reject(protocol, "framing")
            log.warning("validator %d broke framing: %s", sender, exc)
            await stream.reset()
        except Exception as exc:  # a stream torn down under us (reset, connection lost)
            self._ignore(protocol, "stream-error")
            log.info("stream from validator %d ended: %s", sender, exc)

    async def _greet(self, protocol: str, stream: Any, reader: FrameReader) -> bool:
        """Exchange genesis hellos; False (stream reset, refusal counted) if they differ."""
        try:
            await exchange_hello(stream, reader, self._hello)
        except GenesisMismatch as exc:
            self._reject(protocol, "genesis-mismatch")
            log.warning("refused %s stream: %s", protocol, exc)
            await _quietly_reset(stream)
            return False
        return True

    def _answerer(
        self, protocol: str, serve: ServeRequest | None, *, greet: bool
    ) -> Callable[[Any], Awaitable[None]]:
        """A handler of one request frame in, one answer frame out; a few at a time."""
        slots = trio.Semaphore(MAX_SERVING)

        async def answer(stream: Any) -> None:
            if serve is None:
                await stream.reset()
                return
            async with slots:
                await self._answer(protocol, serve, greet, stream)

        return answer

    async def _answer(self, protocol: str, serve: ServeRequest, greet: bool, stream: Any) -> None:
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                reader = FrameReader(stream)
                if greet and not await self._greet(protocol, stream, reader):
                    return
                request = await reader.next()
                answer = None if request is None else await serve(request)
                if answer is not None:
                    await stream.write(frame(answer))
            await stream.close()
        except Exception as exc:  # framing, timeout, reset: the requester retries elsewhere
            self._ignore(protocol, "request-failed")
            log.info("%s request failed: %s", protocol, exc)
            await _quietly_reset(stream)

    # ------------------------------------------------------------ outbound

    def inject_faults(self, rng: random.Random | None = None) -> FaultyLinks:
        """From now on, outgoing frames pass the returned rules (test networks only)."""
        self.faults = FaultyLinks(self._send_now, rng)
        return self.faults

    async def send(self, to: int, payload: bytes, protocol: str = CONSENSUS_PROTOCOL) -> bool:
        """Send one frame to validator ``to``; False (and the stream dropped) on failure."""
        if self.faults is not None:
            return await self.faults.send(to, payload, protocol)
        return await self._send_now(to, payload, protocol)

    async def _send_now(self, to: int, payload: bytes, protocol: str) -> bool:
        key = (to, protocol)
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            try:
                stream = self._outbound.get(key) or await self._open(to, protocol)
                await stream.write(frame(payload))
                return True
            except Exception as exc:  # peer down or reset: reopen on the next send
                self._outbound.pop(key, None)
                log.info("send to validator %d failed: %s", to, exc)
                return False

    async def request(self, to: int, payload: bytes) -> bytes | None:
        """A sync request to validator ``to``: its one-frame answer, or None on any failure."""
        if self.faults is not None and self.faults.drops(to, SYNC_PROTOCOL):
            return None
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                stream = await self._new_stream(to, SYNC_PROTOCOL)
                reader = FrameReader(stream)
                if not await self._greet(SYNC_PROTOCOL, stream, reader):
                    return None
                await stream.write(frame(payload))
                answer = await reader.next()
                await stream.close()
                return answer
        except Exception as exc:
            log.info("sync request to validator %d failed: %s", to, exc)
            return None

    async def _open(self, to: int, protocol: str) -> Any:
        """A greeted stream to validator ``to``; raises if it cannot be opened or greeted."""
        with trio.fail_after(TIMEOUT_S):
            stream = await self._new_stream(to, protocol)
            if not await self._greet(protocol, stream, FrameReader(stream)):
                raise GenesisMismatch(f"validator {to} runs another genesis")
        self._outbound[(to, protocol)] = stream
        return stream

    async def _new_stream(self, to: int, protocol: str) -> Any:
        peer_id, address = self.peers[to]
        info = PeerInfo(ID.from_base58(peer_id), [multiaddr.Multiaddr(address)])
        forget_failed_dial(self.host.get_network(), info.peer_id)
        await self.host.connect(info)
        return await self.host.new_stream(info.peer_id, [TProtocol(protocol)])


async def _quietly_reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception as exc:
        log.debug("reset failed: %s", exc)
