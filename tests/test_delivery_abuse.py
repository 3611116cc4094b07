"""Abuse of what a node serves rollups and of batch votes, against a real 4-node cluster.

- A rollup stream consumer that stops reading: the node's send blocks on TCP
  flow control (the consumer's receive buffer is shrunk so that no buffer in
  between hides it). The node must give up on it with 1008 ``slow consumer``
  instead of waiting or buffering, keep committing meanwhile, give its slot to
  the next consumer, and still stop on SIGTERM while another consumer never
  reads again (the API's sockets drop a peer that takes nothing for 20 s).
- A flood of rollup streams: the node holds at most ``MAX_STREAMS``, refuses
  more with 1013 (counted as ignored/busy in ``/metrics``), answers honest
  requests in time while the flood is held, and gets its slots back once the
  flood leaves.
- Batch votes replayed across a whole-cluster restart: validator k's own vote
  of the first run, an equivocation, a forged vote and garbage, sent in k's
  name over ``/seqnet/shares/1`` to a live node. Replays are ignored and
  change nothing stored; the equivocation is rejected and kept as evidence;
  the cluster keeps certifying once k is back.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import threading
import time
import urllib.request
from collections.abc import Callable

import trio
import trio_websocket

from delivery.batch import decode_namespace_batch, verify_namespace_batch
from delivery.header import BatchCertificate, BatchHeader
from ops.load import Tx, make_txs, submit_batch
from p2p.host import SHARES_PROTOCOL, ValidatorHost
from sequencer_net.base import codec
from sequencer_net.base.signing import Signed
from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import get_json
from sequencer_net.node.genesis import digest, load_keys
from sequencer_net.node.rollup_api import MAX_STREAMS, SEND_TIMEOUT_S
from sequencer_net.node.wire import SHARES, BatchVote
from tests.cluster import Processes, committing, committing_async, wait_until
from tests.test_hostile import scrape_refusals

NS = "rollup-a"
BIG_PAYLOAD = 60_000  # near a ciphertext's limit (64 KiB): a few make a height larger than
BIG_TXS = 10  # any socket buffer, and 10 keep a block far below its 4 MiB
HONEST_BOUND_S = 2.0  # an honest request answered within this while the flood is held
REFUSED = 4  # streams tried past MAX_STREAMS
STREAM_BUSY = ("rollup-stream", "busy")  # how a refused stream is counted in /metrics
CBOR = "application/cbor"
SMALL_RCVBUF = 4096  # a consumer's receive buffer: not reading stops the node's send at once


# ------------------------------------------------------------ helpers


def stream_path(start: int) -> str:
    return f"/v1/namespaces/{NS}/stream?from={start}"


async def open_stream(
    nursery: trio.Nursery, api: str, start: int, rcvbuf: int | None = None
) -> trio_websocket.WebSocketConnection:
    """A WebSocket on its own socket; ``rcvbuf`` shrinks its receive buffer before connecting
    (the kernel then stops the sender after a few KiB instead of a few MiB)."""
    host, port = api.rsplit(":", 1)
    sock = trio.socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.connect((host, int(port)))
    return await trio_websocket.wrap_client_stream(
        nursery,
        trio.SocketStream(sock),
        host,
        stream_path(start),
        max_message_size=codec.MAX_MESSAGE_BYTES,
    )


async def read_until_closed(
    ws: trio_websocket.WebSocketConnection, seconds: float
) -> tuple[list[bytes], trio_websocket.CloseReason]:
    """Every message until the node closes the stream; it must within ``seconds``."""
    got: list[bytes] = []
    with trio.move_on_after(seconds):
        try:
            while True:
                message = await ws.get_message()
                assert isinstance(message, bytes)
                got.append(message)
        except trio_websocket.ConnectionClosed as closed:
            assert closed.reason is not None
            return got, closed.reason
    raise AssertionError(f"the node did not close the stream (sent heights {heights(got)})")


async def first_message(
    ws: trio_websocket.WebSocketConnection, seconds: float
) -> bytes | trio_websocket.CloseReason:
    """The stream's first message, or why the node closed it instead."""
    try:
        with trio.fail_after(seconds):
            message = await ws.get_message()
    except trio_websocket.ConnectionClosed as closed:
        assert closed.reason is not None
        return closed.reason
    assert isinstance(message, bytes)
    return message


def heights(messages: list[bytes]) -> list[int]:
    return [decode_namespace_batch(m).certificate.header.height for m in messages]


def big_transactions(c: Processes) -> list[Tx]:
    payloads = [os.urandom(BIG_PAYLOAD) for _ in range(BIG_TXS)]
    sealed = [seal(c.genesis, NS, p) for p in payloads]
    return [Tx(s.data, s.digest, NS, p) for s, p in zip(sealed, payloads, strict=True)]


def certified_with(c: Processes, txs: list[Tx], node: int) -> int:
    """Wait until every one of ``txs`` is decrypted and certified on ``node``; the top height."""
    where: dict[bytes, int] = {}

    def decrypted() -> bool:
        for tx in txs:
            if tx.digest not in where:
                record = get_json(c.api(node), f"/v1/transactions/{tx.digest.hex()}")
                if record.get("status") == "decrypted":
                    where[tx.digest] = int(record["height"])
        return len(where) == len(txs)

    wait_until(decrypted, 60)
    top = max(where.values())
    wait_until(lambda: c.certified(node) >= top, 30)
    return top


def offer_load(c: Processes, stop: threading.Event) -> None:
    """A few small transactions every 200 ms to nodes 1-3 until ``stop``."""
    tick = 0
    while not stop.wait(0.2):
        with contextlib.suppress(Exception):  # a refusal or a slow answer: load, not a check
            submit_batch(c.api(1 + tick % 3), make_txs(c.genesis, 4, [NS], tag=f"load{tick}"))
        tick += 1


def timed_get(url: str, accept: str = "application/json") -> tuple[float, bytes]:
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return time.monotonic() - started, bytes(body)


def count(
    scraped: dict[str, dict[tuple[str, str], float]], kind: str, key: tuple[str, str]
) -> float:
    return scraped[kind].get(key, 0.0)


# ------------------------------------------------------------ 1. slow consumer


def test_a_consumer_that_stops_reading_is_closed_as_slow_not_buffered_for(
    tmp_path: pathlib.Path,
) -> None:
    c = Processes(tmp_path)
    c.start_all()
    stop = threading.Event()
    load = threading.Thread(target=offer_load, args=(c, stop), daemon=True)
    stuck: socket.socket | None = None
    try:
        c.wait_committing()
        big = big_transactions(c)
        assert submit_batch(c.api(1), big) == ["pending"] * BIG_TXS
        stored = certified_with(c, big, 0)
        load.start()
        stuck = never_reading(c.api(0))
        trio.run(stall_then_read, c, stored)
        assert c.stop(0) == 0  # though `stuck` still holds on
    finally:
        stop.set()
        if stuck is not None:
            stuck.close()
        codes = c.stop_all()
    assert codes == [0, 0, 0]


async def stall_then_read(c: Processes, stored: int) -> None:
    """A consumer takes nothing for longer than ``SEND_TIMEOUT_S``, then reads again: it
    gets the heights up to the one it did not take and then 1008; the node kept committing
    meanwhile and gives the consumer's slot to the next one."""
    async with trio.open_nursery() as nursery:
        slow = await open_stream(nursery, c.api(0), 1, rcvbuf=SMALL_RCVBUF)
        before = await trio.to_thread.run_sync(c.height, 0)
        await trio.sleep(SEND_TIMEOUT_S + 2)  # not reading: the node's send is stuck
        assert await trio.to_thread.run_sync(c.height, 0) >= before + 5
        got, reason = await read_until_closed(slow, 20)
        assert (reason.code, reason.reason) == (1008, "slow consumer")
        sent = heights(got)
        assert sent == list(range(1, len(sent) + 1))
        assert sent[-1] <= stored  # stopped at the message not taken; nothing live after it
        fresh = await first_message(await open_stream(nursery, c.api(0), stored), 10)
        assert isinstance(fresh, bytes) and heights([fresh]) == [stored]
        nursery.cancel_scope.cancel()


def never_reading(api: str) -> socket.socket:
    """A consumer that asks for a stream from height 1 and then reads nothing at all."""
    host, port = api.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.connect((host, int(port)))
    key = "dGhlIHNhbXBsZSBub25jZQ=="  # any 16 bytes in base64 (RFC 6455's example)
    request = (
        f"GET {stream_path(1)} HTTP/1.1\r\nHost: {api}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


# ------------------------------------------------------------ 2. a flood of streams


async def test_a_flood_of_streams_is_capped_counted_and_does_not_starve_honest_requests(
    tmp_path: pathlib.Path,
) -> None:
    async with committing_async(tmp_path) as c:
        await trio.to_thread.run_sync(lambda: wait_until(lambda: c.certified(0) >= 5, 30))
        height = await trio.to_thread.run_sync(c.certified, 0)
        busy_before = await trio.to_thread.run_sync(_busy, c)
        async with trio.open_nursery() as nursery:
            flood = [await open_stream(nursery, c.api(0), 1) for _ in range(MAX_STREAMS)]
            received = [0] * MAX_STREAMS
            for i, ws in enumerate(flood):
                nursery.start_soon(_drain, ws, received, i)
            await _wait_for(lambda: min(received) >= 1, 30)  # every one of them is served
            for _ in range(REFUSED):
                extra = await open_stream(nursery, c.api(0), 1)
                got, reason = await read_until_closed(extra, 10)
                assert got == [] and reason.code == 1013, reason
                assert reason.reason == f"at most {MAX_STREAMS} streams"
            await trio.to_thread.run_sync(_honest_requests, c, height)
            assert await trio.to_thread.run_sync(_busy, c) - busy_before == REFUSED
            for ws in flood:
                await ws.aclose()
            nursery.cancel_scope.cancel()
        await _stream_served_again(c, height)
    assert c.exit_codes == [0, 0, 0, 0]


def _busy(c: Processes) -> float:
    """Node 0's refused streams, from a real scrape of its /metrics."""
    return count(scrape_refusals(c.members[0].metrics), "ignored", STREAM_BUSY)


async def _drain(ws: trio_websocket.WebSocketConnection, received: list[int], i: int) -> None:
    try:
        while True:
            await ws.get_message()
            received[i] += 1
    except trio_websocket.ConnectionClosed:
        return


async def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polls progress made by other tasks
            await trio.sleep(0.05)


def _honest_requests(c: Processes, height: int) -> None:
    """A certified batch and the status, each answered right and within the bound."""
    api = c.api(0)
    elapsed, body = timed_get(f"http://{api}/v1/namespaces/{NS}/batches/{height}", CBOR)
    batch = verify_namespace_batch(c.genesis.committee(), decode_namespace_batch(body), NS, height)
    assert batch.height == height
    assert elapsed < HONEST_BOUND_S, f"batch took {elapsed:.2f} s under the flood"
    elapsed, body = timed_get(f"http://{api}/v1/status")
    assert json.loads(body)["height"] >= height
    assert elapsed < HONEST_BOUND_S, f"status took {elapsed:.2f} s under the flood"


async def _stream_served_again(c: Processes, height: int) -> None:
    """Once the flood has left, a new stream gets a slot (within a few tries)."""
    deadline = trio.current_time() + 10
    while True:
        async with trio.open_nursery() as nursery:
            answer = await first_message(await open_stream(nursery, c.api(0), height), 5)
            nursery.cancel_scope.cancel()
        if isinstance(answer, bytes):
            assert heights([answer]) == [height]
            return
        assert answer.code == 1013, answer
        assert trio.current_time() < deadline, "the flood's slots never came back"
        await trio.sleep(0.5)


# ------------------------------------------------------------ 3. batch votes replayed

K = 3  # the validator whose votes are replayed; its process is stopped meanwhile
T = 0  # the live node they are sent to
REPLAYS = 5  # times the first run's vote is sent again
AHEAD_BY = 500  # the equivocation's height: above what T decrypted, far from being reached


def test_batch_votes_replayed_after_a_whole_cluster_restart_change_nothing(
    tmp_path: pathlib.Path,
) -> None:
    with committing(tmp_path) as c:
        wait_until(lambda: c.certified(K) >= 5, 30)
        old_vote, cert_at_t = first_run_vote(c)
        height = cert_at_t.header.height
        assert c.stop_all() == [0, 0, 0, 0]
        c.start_all()
        c.wait_committing()
        assert c.stop(K) == 0
        frames, first, second = votes_of_k(c, old_vote, height)
        before = scrape_refusals(c.members[T].metrics)
        trio.run(send_as_k, c, frames)
        after = scrape_refusals(c.members[T].metrics)
        proc = c.procs[T]
        assert proc is not None and proc.poll() is None  # T took it all without crashing
        resumed = c.certified(T)
        c.start(K)
        wait_until(lambda: min(c.certified(T), c.certified(K)) >= resumed + 5, 60)
    assert c.exit_codes == [0, 0, 0, 0]
    rejected = _increase(before["rejected"], after["rejected"])
    assert rejected == {"decode": 1, "bad-signature": 1, "header-equivocation": 2}
    ignored = _increase(before["ignored"], after["ignored"])
    assert ignored.get("vote-late", 0) >= REPLAYS  # the old vote: not held against k
    assert ignored.get("vote-duplicate", 0) >= 1
    store = c.store(T)
    assert store.equivocations() == [(first, second)]  # evidence, once; nothing for `height`
    assert store.batch_certificate(height) == cert_at_t  # the replays changed nothing stored
    assert store.disputed_certificates() == []


def first_run_vote(c: Processes) -> tuple[bytes, BatchCertificate]:
    """Validator K's ``BatchVote`` bytes of a certified height as K sent them in this run
    (its signature, taken from a certificate K stored), and T's certificate of that height."""
    for height in range(c.certified(K), 0, -1):
        own = fetch_certificate(c, K, height)
        signatures = dict(own.signatures)
        if K in signatures:  # formed from votes, K's own among them (not synced from a peer)
            break
    else:
        raise AssertionError(f"no certificate of validator {K} holds its own signature")
    vote = SHARES.encode(BatchVote(Signed(own.header, K, signatures[K])))
    key = load_keys(c.dir / f"node-{K}.key.json").signing_key
    resigned = key.sign(own.header, c.genesis.chain_id, K)
    assert vote == SHARES.encode(BatchVote(resigned))  # ed25519 is deterministic
    wait_until(lambda: c.certified(T) >= height, 30)
    return vote, fetch_certificate(c, T, height)


def fetch_certificate(c: Processes, node: int, height: int) -> BatchCertificate:
    url = f"http://{c.api(node)}/v1/namespaces/{NS}/batches/{height}"
    _, body = timed_get(url, CBOR)
    return decode_namespace_batch(body).certificate


def votes_of_k(
    c: Processes, old_vote: bytes, certified: int
) -> tuple[list[bytes], Signed[BatchHeader], Signed[BatchHeader]]:
    """What K sends T: the old vote again and again, two different headers for one
    uncertified height, another header for the certified height, a vote with a bad
    signature, garbage last. Also the equivocation's two votes."""
    key = load_keys(c.dir / f"node-{K}.key.json").signing_key
    chain = c.genesis.chain_id
    ahead = int(get_json(c.api(T), "/v1/status")["decrypted_height"]) + AHEAD_BY
    first = key.sign(_made_up(chain, ahead), chain, K)
    second = key.sign(_made_up(chain, ahead), chain, K)
    other = key.sign(_made_up(chain, certified), chain, K)  # not what K signed there: late,
    # so ignored like the old vote (evidence is kept only while a height is uncertified)
    forged = Signed(_made_up(chain, ahead + 1), K, bytes(64))
    votes = [first, first, second, second, other, forged]
    frames = [old_vote] * REPLAYS + [SHARES.encode(BatchVote(v)) for v in votes]
    return [*frames, b"\xffnot a vote"], first, second


async def send_as_k(c: Processes, frames: list[bytes]) -> None:
    """Send ``frames`` to T on ``/seqnet/shares/1`` as validator K (its key, its peer id)."""
    seed = load_keys(c.dir / f"node-{K}.key.json").signing_key.seed
    peers = [(v.peer_id, v.address) for v in c.genesis.validators]
    host = ValidatorHost(seed, K, peers, _ignore_frame, genesis_id=digest(c.genesis))
    async with host.running():
        for frame in frames:
            assert await host.send(T, frame, SHARES_PROTOCOL)
        await _wait_for_count(c, ("shares", "decode"))  # the last frame was read


def _made_up(chain: str, height: int) -> BatchHeader:
    return BatchHeader(chain, height, os.urandom(32), os.urandom(32), 0, os.urandom(32))


async def _ignore_frame(protocol: str, sender: int, data: bytes) -> None:
    return None


async def _wait_for_count(c: Processes, key: tuple[str, str]) -> None:
    def counted() -> bool:
        return count(scrape_refusals(c.members[T].metrics), "rejected", key) >= 1

    await trio.to_thread.run_sync(lambda: wait_until(counted, 10))


def _increase(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[str, float]:
    """What grew on ``/seqnet/shares/1``, by reason."""
    return {
        reason: value - before.get((protocol, reason), 0.0)
        for (protocol, reason), value in after.items()
        if protocol == "shares" and value > before.get((protocol, reason), 0.0)
    }
