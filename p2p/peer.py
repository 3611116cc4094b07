"""A libp2p node outside the committee: it follows gossip topics, relays them, asks validators.

A rollup's subscriber (or a relay between subscribers) runs one. It dials the
peers it was given (validators from the genesis, other relays) and keeps
dialling any that drop, because gossip only reaches connected peers; it may
listen so that other subscribers can use it as a relay. Inbound connections
pass ``p2p.slots`` as on a validator: the peers it dials itself always get
in, at most ``MAX_OUTSIDERS`` others at a time, and a flood of silent TCP
connections cannot crowd them out. Its identity is a
fresh key unless it is given a seed. Requests (one frame each way on a new
stream, no genesis hello) go to any of the known peers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

from p2p.framing import FrameReader, frame
from p2p.gossip import Gossip, MessageId
from p2p.host import TIMEOUT_S, noise_host
from p2p.slots import InboundSlots, forget_failed_dial

log = logging.getLogger("seqnet.p2p.peer")

RECONNECT_S = 1.0  # between rounds of dialling known peers that are not connected
REQUEST_TIMEOUT_S = 10.0
EPHEMERAL = "/ip4/127.0.0.1/tcp/0"


def peer_info(address: str) -> PeerInfo:
    """A peer from a multiaddr that ends in ``/p2p/<peer id>``; ValueError otherwise."""
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(address))
    except Exception as exc:
        raise ValueError(f"{address!r}: expected a multiaddr ending in /p2p/<peer id>") from exc


class GossipPeer:
    """A non-validator libp2p node with gossip; ``known`` are the peers it keeps dialling."""

    def __init__(
        self,
        known: Sequence[PeerInfo],
        message_id: MessageId,
        *,
        listen: str | None = None,
        seed: bytes | None = None,
    ) -> None:
        self._listen = listen or EPHEMERAL
        self.host = noise_host(seed or os.urandom(32), self._listen)
        self.gossip = Gossip(self.host, message_id)
        self.known = list(known)
        known_ids = {info.peer_id for info in self.known}
        self.slots = InboundSlots(self.host.get_network(), lambda peer: peer in known_ids)
        self.slots.install()
        self.listening = trio.Event()  # set once ``address`` is known

    @asynccontextmanager
    async def running(self) -> AsyncIterator[GossipPeer]:
        """Gossip, listen and keep the known peers connected while the block runs."""
        async with (
            self.gossip.running(),
            self.host.run([multiaddr.Multiaddr(self._listen)]),
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._stay_connected)
            self.listening.set()
            yield self
            nursery.cancel_scope.cancel()

    @property
    def address(self) -> str:
        """Where others dial this peer, ``/p2p/<id>`` included."""
        address = str(self.host.get_addrs()[0])
        suffix = f"/p2p/{self.host.get_id()}"
        return address if address.endswith(suffix) else address + suffix

    def connected(self) -> set[ID]:
        return set(self.host.get_connected_peers())

    async def _stay_connected(self) -> None:
        while True:
            connected = self.connected()
            for info in self.known:
                if info.peer_id not in connected:
                    await self._dial(info)
            await trio.sleep(RECONNECT_S)

    async def _dial(self, info: PeerInfo) -> bool:
        forget_failed_dial(self.host.get_network(), info.peer_id)
        try:
            with trio.fail_after(TIMEOUT_S):
                await self.host.connect(info)
            return True
        except Exception as exc:  # down or refusing: tried again next round
            log.debug("cannot reach %s: %s", info.peer_id, exc)
            return False

    async def request(self, info: PeerInfo, protocol: str, payload: bytes) -> bytes | None:
        """``info``'s one-frame answer to ``payload`` on ``protocol``; None on any failure."""
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                if info.peer_id not in self.connected() and not await self._dial(info):
                    return None
                stream = await self.host.new_stream(info.peer_id, [TProtocol(protocol)])
                await stream.write(frame(payload))
                answer = await FrameReader(stream).next()
                await _close(stream)
                return answer
        except Exception as exc:  # reset, timeout, framing: the caller tries another peer
            log.info("%s request to %s failed: %s", protocol, info.peer_id, exc)
            return None


async def _close(stream: Any) -> None:
    try:
        await stream.close()
    except Exception as exc:
        log.debug("close failed: %s", exc)
