"""Following a rollup: verified batches in height order, whatever the nodes serve.

The nodes here are real WebSocket (and HTTP) servers on 127.0.0.1 that send
crafted bytes: honest certified batches, tampered ones, gaps, duplicates,
forged certificates, early closes, silence. The subscription must hand on
every height exactly once, verified, name each node that served something
that does not verify, and keep going on the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trio
import trio_websocket

from delivery.batch import NamespaceBatch, VerifiedBatch, build_namespace_batch
from delivery.header import (
    BatchCertificate,
    BatchHeader,
    Unverified,
    batch_hash,
    genesis_batch_hash,
)
from delivery.nmt import Leaf, namespace_root, tree_order
from sequencer_net.base import codec
from sequencer_net.base.signing import SigningKey, sign_bytes
from sequencer_net.client import ClientError, Subscription, fetch_batch
from sequencer_net.node import genesis as gen

GENESIS, KEYS = gen.create(4, chain_id="subscribe-test")
NS = "rollup-a"


# --- certified batches, as honest nodes would serve them ---------------------------------


def digest(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


TXS = {1: 1, 2: 2, 3: 1, 4: 1, 5: 0, 6: 2, 7: 0, 8: 1}  # rollup-a's at each height


def payloads(height: int) -> list[bytes | None]:
    """rollup-a's transactions at ``height``: none at 5 and 7, one invalid at 4."""
    txs: list[bytes | None] = [f"tx {height}.{i}".encode() for i in range(TXS[height])]
    return [*txs, None] if height == 4 else txs


def certify(header: BatchHeader, keys: Sequence[SigningKey] | None = None) -> BatchCertificate:
    """A quorum's signatures over ``header`` (by default the genesis validators 0..2)."""
    keys = keys or [k.signing_key for k in KEYS]
    message = sign_bytes(header, header.chain_id)
    return BatchCertificate(header, tuple((i, keys[i].sign_raw(message)) for i in range(3)))


def leaves_at(height: int, mine: Sequence[bytes | None] | None = None) -> list[Leaf]:
    """The whole batch of ``height`` in tree order: rollup-a's transactions and rollup-b's."""
    mine = payloads(height) if mine is None else mine
    ours = [Leaf(NS, digest(height, NS, i), p) for i, p in enumerate(mine)]
    theirs = [Leaf("rollup-b", digest(height, "b"), b"not yours")]
    return tree_order([*theirs, *ours])


def batch_at(
    height: int,
    parent: bytes,
    *,
    leaves: list[Leaf] | None = None,
    keys: Sequence[SigningKey] | None = None,
) -> NamespaceBatch:
    leaves = leaves_at(height) if leaves is None else leaves
    header = BatchHeader(
        GENESIS.chain_id,
        height,
        digest("block", height),
        namespace_root(leaves),
        len(leaves),
        parent,
    )
    return build_namespace_batch(certify(header, keys), leaves, NS)


def chain(
    count: int, mine: Callable[[int], Sequence[bytes | None]] = payloads
) -> list[NamespaceBatch]:
    """Heights 1..count, each extending the one before, with ``mine(h)`` for rollup-a."""
    out: list[NamespaceBatch] = []
    parent = genesis_batch_hash(GENESIS.chain_id)
    for height in range(1, count + 1):
        out.append(batch_at(height, parent, leaves=leaves_at(height, mine(height))))
        parent = batch_hash(out[-1].certificate.header)
    return out


CHAIN = chain(8)
HONEST = {b.certificate.header.height: codec.encode(b) for b in CHAIN}


def parent_of(height: int) -> bytes:
    if height == 1:
        return genesis_batch_hash(GENESIS.chain_id)
    return batch_hash(CHAIN[height - 2].certificate.header)


def tampered(height: int) -> bytes:
    """The honest batch of ``height`` with one of rollup-a's transactions rewritten."""
    honest = CHAIN[height - 1]
    first = honest.leaves[0]
    forged = (dataclasses.replace(first, plaintext=b"pay mallory"), *honest.leaves[1:])
    return codec.encode(dataclasses.replace(honest, leaves=forged))


def withheld(height: int) -> bytes:
    """The batch of ``height`` with rollup-a's transactions left out (a certified header)."""
    return codec.encode(dataclasses.replace(CHAIN[height - 1], leaves=()))


def forged(height: int) -> bytes:
    """A batch of ``height`` certified by keys that are not the genesis validators."""
    strangers = [SigningKey.derive(f"stranger/{i}") for i in range(4)]
    return codec.encode(batch_at(height, parent_of(height), keys=strangers))


def unchained(height: int) -> bytes:
    """A properly certified batch of ``height`` whose parent is not the batch before it."""
    return codec.encode(batch_at(height, digest("elsewhere")))


# --- nodes: real WebSocket servers that send what a test scripts -------------------------


Script = Callable[[int], Sequence[bytes | str]]


def honest(last: int = len(CHAIN)) -> Script:
    return lambda start: [HONEST[h] for h in range(start, last + 1)]


def then(script: Script, *messages: bytes | str) -> Script:
    """``script``, then ``messages``."""
    return lambda start: [*script(start), *messages]


@dataclass
class FakeNode:
    """A node's stream endpoint that sends ``script(from)`` and then holds or closes."""

    script: Script
    close: tuple[int, str] | None = None
    asked: list[int] = field(default_factory=list)
    address: str = ""

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        assert request.path.startswith(f"/v1/namespaces/{NS}/stream?")
        start = int(query["from"][0])
        self.asked.append(start)
        try:
            for message in self.script(start):
                await ws.send_message(message)
            if self.close is not None:
                await ws.aclose(*self.close)
            else:
                await ws.get_message()  # hold the stream open until the client leaves
        except trio_websocket.ConnectionClosed:
            pass


async def serve(nursery: trio.Nursery, *nodes: FakeNode) -> list[str]:
    for node in nodes:
        server = await nursery.start(
            trio_websocket.serve_websocket, node.handle, "127.0.0.1", 0, None
        )
        node.address = f"127.0.0.1:{server.port}"
    return [node.address for node in nodes]


def closed_port() -> str:
    """An address where nothing listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def take(sub: Subscription, count: int, seconds: float = 15) -> list[VerifiedBatch]:
    out: list[VerifiedBatch] = []
    with trio.fail_after(seconds):
        async with sub.batches() as batches:
            async for batch in batches:
                out.append(batch)
                if len(out) == count:
                    break
    return out


def assert_the_chain(got: list[VerifiedBatch], first: int = 1) -> None:
    """Consecutive heights from ``first``, each the honest batch with its transactions."""
    assert [b.height for b in got] == list(range(first, first + len(got)))
    for batch in got:
        honest = CHAIN[batch.height - 1]
        assert batch.batch_hash == batch_hash(honest.certificate.header)
        assert [leaf.plaintext for leaf in batch.leaves] == payloads(batch.height)
        assert batch.namespace == NS


# --- the happy path ----------------------------------------------------------------------


async def test_every_height_in_order_verified_empty_heights_included(
    nursery: trio.Nursery,
) -> None:
    node = FakeNode(honest())
    nodes = await serve(nursery, node)
    sub = Subscription(GENESIS, NS, 1, nodes)
    got = await take(sub, 8)
    assert_the_chain(got)
    assert [b.height for b in got if not b.leaves] == [5, 7]
    assert got[3].leaves[-1].plaintext is None  # the invalid transaction is still a leaf
    assert sub.bad_nodes == {} and sub.next_height == 9 and node.asked == [1]


async def test_leaving_and_coming_back_carries_on_after_the_last_batch_taken(
    nursery: trio.Nursery,
) -> None:
    node = FakeNode(honest())
    nodes = await serve(nursery, node)
    sub = Subscription(GENESIS, NS, 1, nodes)
    first = await take(sub, 3)
    assert sub.next_height == 4 and sub.parent == first[-1].batch_hash
    second = await take(sub, 5)
    assert_the_chain(first + second)
    assert node.asked == [1, 4]


async def test_from_a_later_height(nursery: trio.Nursery) -> None:
    nodes = await serve(nursery, FakeNode(honest()))
    got = await take(Subscription(GENESIS, NS, 5, nodes), 4)
    assert_the_chain(got, first=5)


# --- nodes that serve what does not verify -------------------------------------------------


@pytest.mark.parametrize(
    ("bad_message", "reason"),
    [
        pytest.param(tampered(3), "bad-proof", id="tampered"),
        pytest.param(withheld(1), "out-of-order", id="duplicate"),  # height 1 again
        pytest.param(HONEST[4], "out-of-order", id="gap"),  # height 4 where 3 is due
        pytest.param(withheld(3), "bad-proof", id="withheld"),  # a transaction left out
        pytest.param(forged(3), "bad-certificate", id="forged"),
        pytest.param(unchained(3), "broken-chain", id="unchained"),
        pytest.param(b"\xa0garbage", "decode", id="garbage"),
        pytest.param("a text message", "decode", id="text"),
    ],
)
async def test_a_bad_message_names_the_node_and_another_node_carries_on(
    nursery: trio.Nursery, bad_message: bytes | str, reason: str
) -> None:
    liar = FakeNode(then(honest(2), bad_message, HONEST[3]))
    good = FakeNode(honest())
    nodes = await serve(nursery, liar, good)
    sub = Subscription(GENESIS, NS, 1, nodes)
    got = await take(sub, 6)
    assert_the_chain(got)
    assert sub.bad_nodes == {liar.address: reason}
    assert liar.asked == [1] and good.asked == [3]  # resumed exactly where it stood


async def test_a_bad_node_is_never_asked_again(nursery: trio.Nursery) -> None:
    liar = FakeNode(lambda start: [tampered(start)])
    flaky = FakeNode(lambda start: [HONEST[start]], close=(1008, "slow consumer"))
    nodes = await serve(nursery, liar, flaky)
    sub = Subscription(GENESIS, NS, 1, nodes)
    got = await take(sub, 5)
    assert_the_chain(got)
    assert liar.asked == [1] and flaky.asked == [1, 2, 3, 4, 5]
    assert sub.bad_nodes == {liar.address: "bad-proof"}


async def test_when_no_node_is_left_the_error_names_each_and_why(nursery: trio.Nursery) -> None:
    forger = FakeNode(lambda start: [forged(start)])
    liar = FakeNode(then(honest(2), tampered(3)))
    nodes = await serve(nursery, forger, liar)
    sub = Subscription(GENESIS, NS, 1, [*nodes, nodes[0]])  # a node listed twice counts once
    got: list[VerifiedBatch] = []
    with pytest.raises(ClientError) as no_node:  # raised as itself, not in a group
        await take_into(sub, got)
    assert_the_chain(got)
    assert len(got) == 2
    assert str(no_node.value) == (
        f"no node left to follow {NS} from height 3: each served a batch that does not "
        f"verify: {forger.address} (bad-certificate), {liar.address} (bad-proof)"
    )


async def take_into(sub: Subscription, got: list[VerifiedBatch]) -> None:
    with trio.fail_after(15):
        async with sub.batches() as batches:
            async for batch in batches:
                got.append(batch)


# --- nodes that fail without lying -------------------------------------------------------


async def test_a_close_resumes_from_the_next_height_on_the_next_node(
    nursery: trio.Nursery,
) -> None:
    slow = FakeNode(honest(2), close=(1008, "slow consumer"))
    good = FakeNode(honest())
    nodes = await serve(nursery, slow, good)
    sub = Subscription(GENESIS, NS, 1, nodes)
    got = await take(sub, 8)
    assert_the_chain(got)
    assert sub.bad_nodes == {} and slow.asked == [1] and good.asked == [3]


async def test_one_node_that_keeps_closing_is_followed_round_robin(nursery: trio.Nursery) -> None:
    twice = FakeNode(lambda start: [HONEST[start], HONEST[start + 1]], close=(1001, "bye"))
    nodes = await serve(nursery, twice)
    got = await take(Subscription(GENESIS, NS, 1, nodes), 8)
    assert_the_chain(got)
    assert twice.asked == [1, 3, 5, 7]


async def test_a_down_node_and_a_silent_node_are_passed_over(nursery: trio.Nursery) -> None:
    silent = FakeNode(lambda start: [])
    good = FakeNode(honest())
    down = closed_port()
    nodes = await serve(nursery, silent, good)
    sub = Subscription(GENESIS, NS, 1, [down, *nodes], stall_s=0.3)
    got = await take(sub, 8)
    assert_the_chain(got)
    assert sub.bad_nodes == {}  # silence and absence prove nothing against a node
    assert silent.asked == [1] and good.asked == [1]


def test_a_subscription_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="not registered"):
        Subscription(GENESIS, "rollup-z", 1, ["127.0.0.1:1"])
    with pytest.raises(ValueError, match="start at 1"):
        Subscription(GENESIS, NS, 0, ["127.0.0.1:1"])
    with pytest.raises(ValueError, match="no node"):
        Subscription(GENESIS, NS, 1, [])
    with pytest.raises(ValueError, match="expected host:port"):
        Subscription(GENESIS, NS, 1, ["127.0.0.1:1", "localhost"])


# --- over plain HTTP ------------------------------------------------------------------------


class _BatchNode(BaseHTTPRequestHandler):
    """``GET /v1/namespaces/rollup-a/batches/{h}``: CBOR when asked for it; 404 until certified."""

    served: dict[int, bytes] = HONEST

    def do_GET(self) -> None:
        prefix = f"/v1/namespaces/{NS}/batches/"
        height = int(self.path.removeprefix(prefix)) if self.path.startswith(prefix) else 0
        if height not in self.served:
            self._reply(404, "application/json", json.dumps({"error": "not certified yet"}))
        elif self.headers["accept"] != "application/cbor":
            self._reply(406, "application/json", json.dumps({"error": "ask for cbor"}))
        else:
            self._reply(200, "application/cbor", self.served[height])

    def _reply(self, status: int, kind: str, body: str | bytes) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _LyingBatchNode(_BatchNode):
    served = {**HONEST, 2: tampered(2)}


def http_node(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def batch_node() -> Iterator[str]:
    yield from http_node(_BatchNode)


@pytest.fixture
def lying_batch_node() -> Iterator[str]:
    yield from http_node(_LyingBatchNode)


async def test_fetch_batch_verifies_one_height(batch_node: str, lying_batch_node: str) -> None:
    batch = await fetch_batch(GENESIS, NS, 4, batch_node)
    assert batch.height == 4 and batch.batch_hash == batch_hash(CHAIN[3].certificate.header)
    with pytest.raises(ClientError) as later:
        await fetch_batch(GENESIS, NS, 9, batch_node)
    assert (later.value.status, later.value.reason) == (404, "not certified yet")
    with pytest.raises(Unverified) as lie:
        await fetch_batch(GENESIS, NS, 2, lying_batch_node)
    assert lie.value.reason == "bad-proof"


async def test_the_http_carrier_polls_and_fails_over(
    batch_node: str, lying_batch_node: str
) -> None:
    sub = Subscription(GENESIS, NS, 1, [lying_batch_node, batch_node], carrier="http")
    got = await take(sub, 8)
    assert_the_chain(got)
    assert sub.bad_nodes == {lying_batch_node: "bad-proof"}


# --- seqnet subscribe, as a user runs it -----------------------------------------------------


def genesis_file(directory: pathlib.Path) -> pathlib.Path:
    gen.write(directory, GENESIS, KEYS, force=True)
    return directory / "genesis.json"


async def seqnet(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "sequencer_net.cli", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_seqnet_subscribe_prints_one_line_per_verified_batch(
    nursery: trio.Nursery, tmp_path: pathlib.Path
) -> None:
    liar = FakeNode(then(honest(1), tampered(2)))
    nodes = await serve(nursery, liar, FakeNode(honest()))
    genesis = str(genesis_file(tmp_path))
    common = ["--genesis", genesis, "--rollup", NS, "--node", nodes[0], "--node", nodes[1]]
    text = await seqnet("subscribe", *common, "--from", "1", "--count", "5")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.decode().splitlines()
    assert (
        lines[0] == f"height 1  1 tx  batch {batch_hash(CHAIN[0].certificate.header).hex()[:16]}.."
    )
    assert lines[3].startswith("height 4  2 txs (1 invalid)  batch ")
    assert [line.split()[1] for line in lines] == ["1", "2", "3", "4", "5"]
    assert liar.address in text.stderr.decode() and "bad-proof" in text.stderr.decode()

    as_json = await seqnet("subscribe", *common, "--from", "4", "--count", "2", "--json")
    assert as_json.returncode == 0, as_json.stderr
    first, second = (json.loads(line) for line in as_json.stdout.decode().splitlines())
    assert first == {
        "height": 4,
        "batch_hash": batch_hash(CHAIN[3].certificate.header).hex(),
        "transactions": [
            {"digest": digest(4, NS, 0).hex(), "plaintext": "tx 4.0"},
            {"digest": digest(4, NS, 1).hex(), "plaintext": None},
        ],
    }
    assert second == {
        "height": 5,
        "batch_hash": batch_hash(CHAIN[4].certificate.header).hex(),
        "transactions": [],
    }


async def test_seqnet_subscribe_shows_binary_plaintext_as_hex(
    nursery: trio.Nursery, tmp_path: pathlib.Path
) -> None:
    binary = batch_at(1, parent_of(1), leaves=leaves_at(1, [b"\xff\x00"]))
    nodes = await serve(nursery, FakeNode(lambda start: [codec.encode(binary)]))
    result = await seqnet(
        "subscribe", "--genesis", str(genesis_file(tmp_path)), "--rollup", NS,
        "--node", nodes[0], "--count", "1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transactions"][0]["plaintext"] == "hex:ff00"


async def test_seqnet_subscribe_ctrl_c_exits_zero_quietly(
    nursery: trio.Nursery, tmp_path: pathlib.Path
) -> None:
    nodes = await serve(nursery, FakeNode(honest()))
    command = [sys.executable, "-m", "sequencer_net.cli", "subscribe", "--rollup", NS]
    command += ["--genesis", str(genesis_file(tmp_path)), "--node", nodes[0]]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    seen = b""
    with trio.fail_after(30):
        while seen.count(b"\n") < 8:
            seen += await process.stdout.receive_some()
        process.send_signal(signal.SIGINT)
        assert await process.wait() == 0
        stderr = b""
        while chunk := await process.stderr.receive_some():
            stderr += chunk
    assert stderr == b"" and seen.decode().splitlines()[-1].startswith("height 8 ")


async def test_seqnet_subscribe_fails_in_one_line_when_no_node_is_left(
    nursery: trio.Nursery, tmp_path: pathlib.Path
) -> None:
    nodes = await serve(nursery, FakeNode(lambda start: [forged(start)]))
    result = await seqnet(
        "--log-level", "error", "subscribe", "--genesis", str(genesis_file(tmp_path)),
        "--rollup", NS, "--node", nodes[0],
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"seqnet: error: no node left to follow {NS} from height 1: each served a batch "
        f"that does not verify: {nodes[0]} (bad-certificate)\n"
    )


def test_seqnet_subscribe_help_says_what_is_verified() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sequencer_net.cli", "subscribe", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and "usage: seqnet subscribe" in result.stdout
    assert "quorum" in result.stdout and "genesis" in result.stdout


# --- against a real cluster (the lead runs this once the node API is in) --------------------


def follow_cluster(
    directory: pathlib.Path, rollup: str = NS, count: int = 5
) -> list[dict[str, object]]:
    """``seqnet subscribe --dir DIRECTORY --json --count N`` against a running cluster.

    Checks what must hold whatever the cluster is doing: exit 0, ``count``
    consecutive heights from 1, every line a verified batch. Returns the lines.
    """
    where = ["--dir", str(directory), "--rollup", rollup, "--from", "1", "--count", str(count)]
    result = subprocess.run(
        [sys.executable, "-m", "sequencer_net.cli", "subscribe", *where, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["height"] for line in lines] == list(range(1, count + 1))
    return lines
