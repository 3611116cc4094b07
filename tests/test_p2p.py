"""Direct validator streams over real libp2p on 127.0.0.1: Noise, framing, allow-list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

from p2p.framing import FrameError, FrameReader, frame
from p2p.host import CONSENSUS_PROTOCOL, ValidatorHost
from p2p.identity import peer_id
from sequencer_net.base.signing import SigningKey

SEEDS = [SigningKey.derive(f"p2p/{i}").seed for i in range(5)]


@asynccontextmanager
async def cluster(
    n_validators: int,
    genesis_ids: Sequence[bytes | None] = (),
    on_reject: Callable[[str, str], None] | None = None,
    serve_sync: Callable[[bytes], Awaitable[bytes | None]] | None = None,
    on_shed: Callable[[str], None] = lambda reason: None,
) -> AsyncIterator[tuple[list[ValidatorHost], list[list[tuple[int, bytes]]]]]:
    """Validators 0..n-1 listening on loopback; inbox[i] collects what i received.

    ``genesis_ids[i]`` (default: none given) is the genesis digest host i binds.
    """
    inbox: list[list[tuple[int, bytes]]] = [[] for _ in range(n_validators)]
    hosts: list[ValidatorHost] = []
    peers: list[tuple[str, str]] = []
    ids = list(genesis_ids) or [None] * n_validators
    for i in range(n_validators):

        async def on_frame(protocol: str, sender: int, data: bytes, i: int = i) -> None:
            inbox[i].append((sender, data))

        options = {
            "on_reject": on_reject,
            "serve_sync": serve_sync,
            "genesis_id": ids[i],
            "on_shed": on_shed,
        }
        hosts.append(ValidatorHost(SEEDS[i], i, peers, on_frame, **options))
    async with AsyncExitStack() as stack:
        for h in hosts:
            await stack.enter_async_context(h.running())
        for i, h in enumerate(hosts):
            peers.append((peer_id(SigningKey(SEEDS[i]).public_key), h.address.split("/p2p/")[0]))
        for h in hosts:
            h.set_peers(peers)
        yield hosts, inbox


async def wait_for(condition: object, seconds: float = 5.0) -> None:
    with trio.fail_after(seconds):
        # polls state owned by libp2p's tasks: there is no event to wait on
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_validators_exchange_frames_over_noise() -> None:
    async with cluster(2) as (hosts, inbox):
        for k in range(20):
            assert await hosts[0].send(1, b"frame-%d" % k)
        assert await hosts[1].send(0, b"back")
        await wait_for(lambda: len(inbox[1]) == 20 and len(inbox[0]) == 1)
        assert inbox[1] == [(0, b"frame-%d" % k) for k in range(20)]  # in order, one stream
        assert inbox[0] == [(1, b"back")]


async def test_a_peer_outside_genesis_is_refused_and_counted() -> None:
    async with cluster(2) as (hosts, inbox):
        outsider = ValidatorHost(
            SEEDS[2], 2, [*hosts[0].peers, ("x", "/ip4/127.0.0.1/tcp/1")], _ignore
        )
        async with outsider.running():
            with pytest.raises(Exception):  # noqa: B017 - any failure: the stream is reset
                stream = await outsider._open(0, CONSENSUS_PROTOCOL)
                await stream.write(frame(b"let me vote"))
                await stream.read(1)
                await stream.write(frame(b"again"))
                await trio.sleep(0.2)
                await stream.write(frame(b"and again"))
        await wait_for(lambda: hosts[0].rejected["not-a-validator"] == 1)
        assert inbox[0] == []


async def _ignore(protocol: str, sender: int, data: bytes) -> None:
    return None


class _Chunks:
    """A stream that yields prepared chunks, then EOF."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def read(self, n: int = -1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def write(self, data: bytes) -> None:
        return None


async def test_frames_survive_any_chunking_and_oversize_is_refused_early() -> None:
    data = frame(b"hello") + frame(b"") + frame(b"world" * 100)
    reader = FrameReader(_Chunks([data[i : i + 3] for i in range(0, len(data), 3)]))
    assert [await reader.next(), await reader.next(), await reader.next(), await reader.next()] == [
        b"hello",
        b"",
        b"world" * 100,
        None,
    ]
    huge = FrameReader(_Chunks([(10**9).to_bytes(4, "big")]), max_bytes=1024)
    with pytest.raises(FrameError, match="cap"):
        await huge.next()
    truncated = FrameReader(_Chunks([frame(b"abcdef")[:6]]))
    with pytest.raises(FrameError, match="inside a frame"):
        await truncated.next()


async def test_a_silent_peer_mid_frame_times_out() -> None:
    class Stall(_Chunks):
        async def read(self, n: int = -1) -> bytes:
            if self.chunks:
                return self.chunks.pop(0)
            await trio.sleep_forever()
            return b""

    reader = FrameReader(Stall([b"\x00\x00"]), timeout_s=0.05)
    with pytest.raises(FrameError, match="silent"):
        await reader.next()


def test_protocol_id_is_the_documented_one() -> None:
    assert CONSENSUS_PROTOCOL == "/seqnet/consensus/1"
