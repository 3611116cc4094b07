"""The baseline rollups compare against: one centralized sequencer, no consensus, no encryption.

What most rollups run today is a single sequencer: it takes plaintext
transactions first come first served, cuts a batch every so often, stores it
and streams it to the rollup's nodes. ``seqnet bench`` runs this one in the
same run as the cluster, through the same HTTP ingress and delivery path as a
node (FastAPI under hypercorn on trio, the node's body limits and CBOR
parsing, a WebSocket stream per namespace), so that seqnet's throughput and
latency can be told as ratios to it. Nothing here is signed, encrypted or
agreed on: that is the point.

    python -m ops.centralized --api 127.0.0.1:PORT --database PATH --namespaces a,b
                              [--block-ms 50]

- A transaction is canonical CBOR ``[namespace, payload]`` (text, bytes); its
  digest is the SHA-256 of those bytes under a domain tag (:func:`tx_digest`).
- ``POST /v1/transactions/batch``: a CBOR array of such byte strings, answered
  as a node answers: ``{"results": [{"digest", "status"}]}``, one per item in
  order, ``status`` ``pending`` or the reason it was refused (``malformed``,
  ``oversized``, ``unknown-namespace``, ``duplicate`` of a stored or queued one,
  ``overloaded`` once the next batch holds 8 MiB; ``digest`` is empty for an
  item that is not a transaction).
- Acknowledged once stored: the answer waits until the batch holding the
  request's transactions is committed to SQLite (WAL, ``synchronous=FULL``), so
  nothing acknowledged is lost, not even by a power cut. One client sending a
  request at a time therefore gets at most one request into each batch.
- A batch is cut ``--block-ms`` after the previous one, or as soon as a
  transaction arrives if that time has passed (no empty heights): heights 1, 2,
  ... each holding everything queued, in arrival order.
- ``WebSocket /v1/namespaces/{ns}/stream?from=H``: every height from ``H`` on,
  one binary CBOR message ``[height, namespace, [payload, ...]]`` each (an
  empty list where the namespace had nothing), from storage and then live.
- ``GET /v1/status``: ``{"height", "queued", "namespaces"}``.

The first line on stdout is the address served (``127.0.0.1:PORT``; port 0
picks a free one). SIGINT or SIGTERM stops it. ``python -m ops.centralized
follow ADDRESS FROM NS[,NS...]`` is the bench's rollup (:class:`Subscriber`, a
child process like ``ops.load``'s rollup follower): a JSON line per message.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import cbor2
import trio
from fastapi import FastAPI, Query, Request, WebSocket
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from mev.kem import MAX_PAYLOAD_BYTES
from ops.load import JsonLinesChild, cpu_seconds_of
from sequencer_net.base import codec
from sequencer_net.base.codec import MAX_MESSAGE_BYTES, DecodeError

# the node's own body reading and batch parsing, so that the ingress costs what a node's does
from sequencer_net.node.api import (
    MAX_BATCH_BODY_BYTES,
    cbor_byte_strings,
    read_body,
    refusal,
    serve_http,
)

if TYPE_CHECKING:
    from ops.load import Tx

# The bench's side (CentralizedProcess, Subscriber, make_plain_txs) imports ops.load and the
# client in its functions: the child processes need neither (libp2p alone takes ~0.5 s to load).

DIGEST_TAG = b"seqnet/centralized/v1\x00"
MAX_NAMESPACE_CHARS = 64  # as the node's rollup routes
MAX_TX_BYTES = MAX_PAYLOAD_BYTES + MAX_NAMESPACE_CHARS + 16  # a node's payload cap, plus framing
MAX_CUT_BYTES = MAX_MESSAGE_BYTES  # a batch's transactions; beyond, "overloaded" until the cut
MAX_STREAM_MESSAGE_BYTES = 2 * MAX_CUT_BYTES  # what the subscriber accepts (payloads + framing)
RECENT_HEIGHTS = 1024  # heights whose stream messages are kept in memory
SEND_TIMEOUT_S = 10.0  # a stream consumer that takes longer for one message is closed
POLICY_VIOLATION = 1008  # WebSocket close code (RFC 6455)
START_TIMEOUT_S = 30.0  # the child must print its address within this long
SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (height INTEGER PRIMARY KEY, txs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (digest BLOB PRIMARY KEY, height INTEGER NOT NULL) WITHOUT ROWID;
"""


def tx_digest(data: bytes) -> bytes:
    """A transaction's identity: what a duplicate is refused by and the bench matches on."""
    return hashlib.sha256(DIGEST_TAG + data).digest()


def encode_tx(namespace: str, payload: bytes) -> bytes:
    """A transaction as submitted: canonical CBOR ``[namespace, payload]``."""
    return codec.dumps_plain([namespace, payload])


def make_plain_txs(
    count: int, namespaces: Sequence[str], payload_bytes: int, tag: str = "tx"
) -> list[Tx]:
    """``count`` plaintext transactions spread over ``namespaces``, each payload unique and
    padded to ``payload_bytes`` (as ``ops.load.make_txs`` pads its plaintexts)."""
    from ops.load import Tx

    out = []
    for k in range(count):
        namespace = namespaces[k % len(namespaces)]
        payload = f"{tag}-{k}".encode()[:payload_bytes].ljust(payload_bytes, b".")
        data = encode_tx(namespace, payload)
        out.append(Tx(data, tx_digest(data), namespace, payload))
    return out


def screen(data: bytes, namespaces: frozenset[str]) -> tuple[str, bytes] | str:
    """``(namespace, payload)`` of a well-formed transaction, or why it is refused."""
    if len(data) > MAX_TX_BYTES:
        return "oversized"
    try:
        item = codec.loads_canonical(data, max_bytes=MAX_TX_BYTES)
    except DecodeError:
        return "malformed"
    if type(item) is not list or len(item) != 2:
        return "malformed"
    namespace, payload = item
    if type(namespace) is not str or type(payload) is not bytes:
        return "malformed"
    return (namespace, payload) if namespace in namespaces else "unknown-namespace"


def stream_message(height: int, namespace: str, payloads: list[bytes]) -> bytes:
    """What a stream sends for one height: ``[height, namespace, [payload, ...]]``."""
    return cbor2.dumps([height, namespace, payloads])


# ------------------------------------------------------------ storage


class BatchLog:
    """The durable log: a row per height (its transactions, in order), every digest indexed.

    One connection, used from worker threads one at a time (a lock). A batch is
    one transaction committed with ``synchronous=FULL``: on disk when
    :meth:`append` returns. The digest index refuses a duplicate, across restarts.
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def height(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(height) FROM batches").fetchone()
        return int(row[0] or 0)

    def append(self, height: int, txs: Sequence[Queued]) -> list[bool]:
        """Store the transactions not stored before at ``height``; which of them were."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                kept = [self._index(tx.digest, height) for tx in txs]
                items = [[tx.namespace, tx.payload] for tx, k in zip(txs, kept, strict=True) if k]
                if items:
                    blob = cbor2.dumps(items)
                    self._db.execute("INSERT INTO batches VALUES (?, ?)", (height, blob))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return kept

    def _index(self, digest: bytes, height: int) -> bool:
        cursor = self._db.execute("INSERT OR IGNORE INTO txs VALUES (?, ?)", (digest, height))
        return cursor.rowcount == 1

    def batch(self, height: int) -> list[tuple[str, bytes]]:
        """The transactions stored at ``height`` (namespace, payload), in order."""
        with self._lock:
            row = self._db.execute("SELECT txs FROM batches WHERE height = ?", (height,)).fetchone()
        return [] if row is None else [(ns, payload) for ns, payload in cbor2.loads(row[0])]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ------------------------------------------------------------ the sequencer


@dataclass(frozen=True, slots=True)
class Queued:
    digest: bytes
    namespace: str
    payload: bytes


@dataclass
class Cut:
    """The transactions queued for the next batch; ``kept`` (per item) once it is stored."""

    txs: list[Queued] = field(default_factory=list)
    size: int = 0  # bytes of the transactions, as submitted
    kept: list[bool] = field(default_factory=list)
    stored: trio.Event = field(default_factory=trio.Event)


class Sequencer:
    """First come first served: queue, cut every ``block_s``, store, then publish to streams."""

    def __init__(self, log: BatchLog, namespaces: Sequence[str], block_s: float) -> None:
        self.log, self.namespaces, self.block_s = log, frozenset(namespaces), block_s
        self.height = log.height()
        self._next = Cut()
        self._wake = trio.Event()  # set when the next cut gets its first transaction
        self._new_height = trio.Event()  # set (and replaced) at every height stored
        self._recent: OrderedDict[int, dict[str, bytes]] = OrderedDict()

    async def submit(self, items: list[bytes]) -> list[dict[str, str]]:
        """One verdict per item, once the batch holding the accepted ones is stored."""
        cut, verdicts = self._next, []
        for data in items:
            verdicts.append(self._queue(cut, data))
        if cut.txs:
            self._wake.set()
        if any(isinstance(v, int) for v in verdicts):
            await cut.stored.wait()
        return [_verdict(v, cut) for v in verdicts]

    def _queue(self, cut: Cut, data: bytes) -> int | tuple[bytes, str]:
        """The item's index in ``cut``, or (digest, reason) if refused now."""
        found = screen(data, self.namespaces)
        if isinstance(found, str):
            return (b"" if found == "malformed" else tx_digest(data)), found
        digest = tx_digest(data)
        if cut.size + len(data) > MAX_CUT_BYTES:
            return digest, "overloaded"
        cut.txs.append(Queued(digest, *found))
        cut.size += len(data)
        return len(cut.txs) - 1

    async def run(self) -> None:
        """Cut, store and publish a batch at a time, forever."""
        last_cut = -self.block_s
        while True:
            await trio.sleep_until(last_cut + self.block_s)
            while not self._next.txs:
                self._wake = trio.Event()
                await self._wake.wait()
            cut, self._next = self._next, Cut()
            last_cut = trio.current_time()
            await self._store(cut)

    async def _store(self, cut: Cut) -> None:
        height = self.height + 1
        cut.kept = await trio.to_thread.run_sync(self.log.append, height, cut.txs)
        if any(cut.kept):
            kept = [tx for tx, new in zip(cut.txs, cut.kept, strict=True) if new]
            self._remember(height, kept)
            self.height = height
            self._new_height.set()
            self._new_height = trio.Event()
        cut.stored.set()

    def _remember(self, height: int, txs: list[Queued]) -> None:
        by_namespace: dict[str, list[bytes]] = {ns: [] for ns in self.namespaces}
        for tx in txs:
            by_namespace[tx.namespace].append(tx.payload)
        self._recent[height] = {
            ns: stream_message(height, ns, payloads) for ns, payloads in by_namespace.items()
        }
        while len(self._recent) > RECENT_HEIGHTS:
            self._recent.popitem(last=False)

    async def message(self, height: int, namespace: str) -> bytes:
        """The stream message of a stored height (from memory, else from the log)."""
        await self.wait_stored(height)
        recent = self._recent.get(height)
        if recent is not None:
            return recent[namespace]
        txs = await trio.to_thread.run_sync(self.log.batch, height)
        return stream_message(height, namespace, [p for ns, p in txs if ns == namespace])

    async def wait_stored(self, height: int) -> None:
        while height > self.height:
            await self._new_height.wait()

    def status(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "queued": len(self._next.txs),
            "namespaces": sorted(self.namespaces),
        }


def _verdict(v: int | tuple[bytes, str], cut: Cut) -> dict[str, str]:
    if isinstance(v, int):
        tx = cut.txs[v]
        return {"digest": tx.digest.hex(), "status": "pending" if cut.kept[v] else "duplicate"}
    digest, reason = v
    return {"digest": digest.hex(), "status": reason}


# ------------------------------------------------------------ HTTP and WebSocket


def build_app(seq: Sequencer) -> FastAPI:
    app = FastAPI(title="centralized sequencer (seqnet bench baseline)")

    @app.post("/v1/transactions/batch")
    async def submit_batch(request: Request) -> Any:
        body = await read_body(request, MAX_BATCH_BODY_BYTES)
        if isinstance(body, Response):
            return body
        items = cbor_byte_strings(body)
        if items is None:
            return refusal(400, "expected a CBOR array of byte strings (at most the node's count)")
        return {"results": await seq.submit(items)}

    @app.get("/v1/status")
    async def status() -> Any:
        return seq.status()

    @app.websocket("/v1/namespaces/{namespace}/stream")
    async def stream(ws: WebSocket, namespace: str, start: int = Query(1, alias="from")) -> None:
        await ws.accept()
        if namespace not in seq.namespaces:
            return await ws.close(POLICY_VIOLATION, f"namespace {namespace!r} is not served")
        if start < 1:
            return await ws.close(POLICY_VIOLATION, "from must be a height >= 1")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_gone, ws, nursery.cancel_scope)
            await _send_from(ws, seq, namespace, start)
            nursery.cancel_scope.cancel()

    return app


async def _until_gone(ws: WebSocket, scope: trio.CancelScope) -> None:
    """Cancel the stream once its consumer has left (only a receive sees that)."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass
    scope.cancel()


async def _send_from(ws: WebSocket, seq: Sequencer, namespace: str, height: int) -> None:
    """Every height from ``height`` on, once stored, until the consumer leaves or stalls."""
    while True:
        data = await seq.message(height, namespace)
        with trio.move_on_after(SEND_TIMEOUT_S) as timer:
            try:
                await ws.send_bytes(data)
            except WebSocketDisconnect:
                return
        if trio.current_time() >= timer.deadline:
            await ws.close(POLICY_VIOLATION, "slow consumer")
            return
        height += 1


async def serve(api: str, database: Path, namespaces: Sequence[str], block_ms: int) -> None:
    """Serve until SIGINT or SIGTERM; the bound address is printed first."""
    log = BatchLog(database)
    try:
        seq = Sequencer(log, namespaces, block_ms / 1000)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(serve_http, build_app(seq), api)
                nursery.start_soon(seq.run)
                print(binds[0].removeprefix("http://"), flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
    finally:
        log.close()


# ------------------------------------------------------------ the bench's side


class CentralizedProcess:
    """``python -m ops.centralized`` as a child process; ``address`` once it serves."""

    def __init__(self, database: Path, namespaces: Sequence[str], block_ms: int = 50) -> None:
        command = [sys.executable, "-m", "ops.centralized", "--api", "127.0.0.1:0"]
        command += ["--database", str(database), "--namespaces", ",".join(namespaces)]
        command += ["--block-ms", str(block_ms)]
        from ops.processes import die_with_parent  # the child is SIGTERMed if we die

        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent()
        )
        self.address = self._address()

    def _address(self) -> str:
        assert self.proc.stdout is not None
        timer = threading.Timer(START_TIMEOUT_S, self.proc.kill)  # a hung child: readline ends
        timer.start()
        try:
            line = self.proc.stdout.readline().strip()
        finally:
            timer.cancel()
        if not line.startswith("127.0.0.1:"):
            from sequencer_net.client.http import ClientError

            self.stop()
            raise ClientError(f"the centralized sequencer did not start (it said {line!r})")
        return line

    def cpu_seconds(self) -> float:
        from ops.load import cpu_seconds_of

        return cpu_seconds_of(self.proc.pid)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it lingers; its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def __enter__(self) -> CentralizedProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Subscriber(JsonLinesChild):
    """A rollup reading every namespace's stream, in a child process (its own GIL and CPU).

    ``seen`` maps each digest to (``time.monotonic()`` when its message
    arrived, height), comparable with submit times taken here; ``log`` is every
    message in arrival order (namespace, height, digests). The child exits when
    its stdin closes (:meth:`stop`).
    """

    def __init__(self, address: str, namespaces: Sequence[str], from_height: int = 1) -> None:
        self.seen: dict[bytes, tuple[float, int]] = {}
        self.log: list[tuple[str, int, list[bytes]]] = []
        self.ready: set[str] = set()
        self.height = 0  # the highest height read, any namespace
        self.error: str | None = None
        command = [sys.executable, "-m", "ops.centralized", "follow", address]
        super().__init__([*command, str(from_height), ",".join(namespaces)])

    def _on_message(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            self.ready.add(message["ready"])
        elif "error" in message:
            self.error = message["error"]
        else:
            digests = [bytes.fromhex(d) for d in message["d"]]
            for digest in digests:
                self.seen.setdefault(digest, (message["t"], message["h"]))
            self.log.append((message["ns"], message["h"], digests))
            self.height = max(self.height, message["h"])

    def wait_ready(self, namespaces: Sequence[str], timeout_s: float) -> bool:
        """Whether every namespace's stream was open within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not set(namespaces) <= self.ready:
            if time.monotonic() > deadline or not self.alive:
                return False
            time.sleep(0.02)
        return True

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.proc.pid)


async def _follow(address: str, start: int, namespaces: Sequence[str]) -> None:
    """(child) One WebSocket per namespace; a JSON line per message, until stdin closes."""
    import trio_websocket

    host, _, port = address.rpartition(":")

    def emit(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    async def follow(namespace: str) -> None:
        path = f"/v1/namespaces/{namespace}/stream?from={start}"
        try:
            async with trio_websocket.open_websocket(
                host, int(port), path, use_ssl=False, max_message_size=MAX_STREAM_MESSAGE_BYTES
            ) as ws:
                emit({"ready": namespace})
                while True:
                    message = await ws.get_message()
                    if not isinstance(message, bytes):
                        raise ValueError("a text message: the stream sends CBOR")
                    height, ns, payloads = cbor2.loads(message)
                    arrived = time.monotonic()
                    digests = [tx_digest(encode_tx(ns, p)).hex() for p in payloads]
                    emit({"ns": ns, "h": height, "t": arrived, "d": digests})
        except (
            OSError,
            ValueError,
            trio_websocket.HandshakeError,
            trio_websocket.ConnectionClosed,
        ) as exc:
            emit({"error": f"{namespace}: {type(exc).__name__}: {exc}"})

    async def until_stdin_closes(done: trio.CancelScope) -> None:
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        while await stdin.receive_some():
            pass
        done.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(until_stdin_closes, nursery.cancel_scope)
        for namespace in namespaces:
            nursery.start_soon(follow, namespace)


# ------------------------------------------------------------ command line


def _namespaces(text: str) -> list[str]:
    names = text.split(",")
    if not all(0 < len(n) <= MAX_NAMESPACE_CHARS for n in names) or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"distinct names of 1-{MAX_NAMESPACE_CHARS} characters")
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ops.centralized",
        description=(
            "A centralized single sequencer (no consensus, no encryption): the baseline "
            "`seqnet bench` compares against. Prints the address it serves, then serves "
            "until SIGINT or SIGTERM."
        ),
        epilog="`python -m ops.centralized follow ADDRESS FROM NS[,NS...]`: the bench's "
        "subscriber, a JSON line per stream message.",
    )
    p.add_argument("--api", required=True, metavar="HOST:PORT", help="HTTP address (port 0: any)")
    p.add_argument("--database", required=True, type=Path, help="SQLite file (created if absent)")
    p.add_argument("--namespaces", required=True, type=_namespaces, metavar="NS[,NS...]")
    p.add_argument("--block-ms", type=int, default=50, help="time between batches (50)")
    return p


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["follow"] and len(argv) == 4:
        trio.run(_follow, argv[1], int(argv[2]), argv[3].split(","))
        return 0
    args = _parser().parse_args(argv)
    if args.block_ms < 1:
        _parser().error("--block-ms must be at least 1")
    trio.run(serve, args.api, args.database, args.namespaces, args.block_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
