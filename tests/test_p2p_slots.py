"""Connection slots on real libp2p hosts (127.0.0.1): validators always reach each other.

An outside flood of raw TCP connections (from this test, to 127.0.0.1 only,
bounded in count and time), outsiders holding every outsider slot, and a dial
that failed while the peer was down must neither keep two validators apart
nor delay them by more than a couple of seconds.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

import trio
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from multiaddr import Multiaddr

from p2p.gossip import content_id
from p2p.host import ValidatorHost
from p2p.identity import peer_id
from p2p.peer import GossipPeer
from p2p.slots import MAX_PENDING
from sequencer_net.base.signing import SigningKey
from tests.test_p2p import SEEDS, cluster, wait_for

FLOOD_CONNECTIONS = MAX_PENDING + 16  # per validator: more than its handshake slots
FLOOD_SECONDS = 10.0


async def _hold_raw_connections(port: int, deadline: float, opened: list[int]) -> None:
    """One flood slot: a silent TCP connection, re-opened (at most once a second) when closed."""
    while trio.current_time() < deadline:
        started = trio.current_time()
        with trio.socket.socket() as sock:
            try:
                await sock.connect(("127.0.0.1", port))
                opened[0] += 1
                with trio.move_on_after(deadline - started):
                    while await sock.recv(4096):  # read and ignore until the host closes it
                        pass
            except OSError:
                pass
        await trio.sleep(max(0.0, started + 1.0 - trio.current_time()))


async def _exchange(hosts: list[ValidatorHost], inbox: list[list[tuple[int, bytes]]]) -> None:
    """Keep sending both ways until each side has received a frame."""
    for a, b in ((0, 1), (1, 0)):
        while not inbox[b]:
            sent = await hosts[a].send(b, b"hello %d" % a)
            await trio.sleep(0.02 if sent else 0.1)


async def test_validators_connect_and_talk_through_a_raw_tcp_flood() -> None:
    shed: Counter[str] = Counter()
    hosts_up = cluster(2, on_shed=lambda reason: shed.update([reason]))
    async with hosts_up as (hosts, inbox), trio.open_nursery() as flood:
        opened = [0]
        deadline = trio.current_time() + FLOOD_SECONDS
        for _, address in hosts[0].peers:
            for _ in range(FLOOD_CONNECTIONS):
                flood.start_soon(
                    _hold_raw_connections, int(address.split("/")[-1]), deadline, opened
                )
        await trio.sleep(3)  # a sustained flood: every slot re-taken several times over
        assert all(h.slots.evicted > MAX_PENDING for h in hosts)
        started = time.monotonic()
        with trio.fail_after(8):
            await _exchange(hosts, inbox)
        took = time.monotonic() - started
        flood.cancel_scope.cancel()
    assert shed["evicted"] == sum(h.slots.evicted for h in hosts)  # what the metric counts
    print(f"flood of {opened[0]} connections: validators exchanged frames after {took:.2f} s")
    assert took < 5


async def test_a_failed_dial_does_not_keep_a_validator_away() -> None:
    """py-libp2p would refuse to re-dial a peer for 60 s after one failed dial."""
    port = _free_port()
    async with cluster(1) as (hosts, _):
        received: list[bytes] = []

        async def on_frame(protocol: str, sender: int, data: bytes) -> None:
            received.append(data)

        me = (peer_id(SigningKey(SEEDS[1]).public_key), f"/ip4/127.0.0.1/tcp/{port}")
        peers = [hosts[0].peers[0], me]
        hosts[0].set_peers(peers)
        assert not await hosts[0].send(1, b"too early")  # nobody listens yet
        late = ValidatorHost(SEEDS[1], 1, peers, on_frame, listen=me[1])
        async with late.running():
            started = time.monotonic()
            assert await hosts[0].send(1, b"now")  # at once, not 60 s later
            await wait_for(lambda: received == [b"now"])
            assert time.monotonic() - started < 2


async def test_outsiders_beyond_their_slots_are_refused_and_a_closed_slot_is_freed() -> None:
    async with cluster(2) as (hosts, inbox):
        hosts[0].slots.max_outsiders = 1
        outsiders = [ValidatorHost(SEEDS[k], k, hosts[0].peers, _ignore) for k in (2, 3)]
        async with outsiders[0].running(), outsiders[1].running():
            for k, outsider in enumerate(outsiders):
                await outsider.host.connect(_info(hosts[0]))
                await wait_for(
                    lambda k=k: hosts[0].slots.outsiders + hosts[0].slots.refused == k + 1
                )
            assert (hosts[0].slots.outsiders, hosts[0].slots.refused) == (1, 1)
            assert await hosts[1].send(0, b"validators still get in")
            await wait_for(lambda: inbox[0] == [(1, b"validators still get in")])
            await outsiders[0].host.disconnect(hosts[0].host.get_id())
            await wait_for(lambda: hosts[0].slots.outsiders == 0)
            await outsiders[1].host.connect(_info(hosts[0]))
            await wait_for(lambda: hosts[0].slots.outsiders == 1)  # the freed slot is reused


async def test_a_relay_admits_outsiders_only_up_to_its_slots() -> None:
    """A subscriber that listens as a relay sheds outsiders past its slots like a validator."""
    relay = GossipPeer([], content_id)
    relay.slots.max_outsiders = 1
    others = [GossipPeer([], content_id) for _ in range(2)]
    async with relay.running(), others[0].running(), others[1].running():
        target = info_from_p2p_addr(Multiaddr(relay.address))
        for k, other in enumerate(others):
            await other.host.connect(target)
            await wait_for(lambda k=k: relay.slots.outsiders + relay.slots.refused == k + 1)
        assert (relay.slots.outsiders, relay.slots.refused) == (1, 1)


def _info(host: ValidatorHost) -> PeerInfo:
    return info_from_p2p_addr(Multiaddr(host.address))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ignore(protocol: str, sender: int, data: bytes) -> None:
    return None
