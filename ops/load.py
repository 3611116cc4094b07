"""A load client: encrypt transactions, submit them in batches, watch them come out decrypted.

Used by the end-to-end tests and ``ops/bench``; it talks to nodes only through
their HTTP API, like any rollup client. :class:`RollupFollower` also follows
what a rollup receives: every namespace's certified batches through the client
library (``Subscription``, WebSocket carrier), verified, in a child process
(``python -m ops.load follow ...``) so that its verification has its own GIL
and its CPU time can be told apart from the load generator's. :class:`NullSink`
is a stand-in for a node's batch ingress that accepts everything and checks
nothing (``python -m ops.load sink``, a child process too): what the load
client alone can submit is measured against it.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import cbor2

from mev.kem import digest_of_encoding
from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import ClientError, get_json, post
from sequencer_net.node.genesis import Genesis, load_genesis

CPU_SAMPLE_S = 0.25  # the follower reports its CPU time this often
SUBMIT_BATCH = 250  # transactions per request when a backlog is submitted at once
BATCH_PATH = "/v1/transactions/batch"


@dataclass(frozen=True, slots=True)
class Tx:
    data: bytes  # the encoded ciphertext, as submitted
    digest: bytes
    namespace: str
    payload: bytes


def make_txs(
    genesis: Genesis,
    count: int,
    namespaces: Iterable[str],
    tag: str = "tx",
    payload_bytes: int | None = None,
) -> list[Tx]:
    """``count`` transactions spread over ``namespaces``, each payload unique.

    ``payload_bytes``: pad each plaintext to exactly this size (a benchmark's
    transaction size); by default the payload is just its short unique name.
    """
    spaces = list(namespaces)
    out = []
    for k in range(count):
        ns, payload = spaces[k % len(spaces)], f"{tag}-{k}".encode()
        if payload_bytes is not None:
            payload = payload[:payload_bytes].ljust(payload_bytes, b".")
        sealed = seal(genesis, ns, payload)
        out.append(Tx(sealed.data, sealed.digest, ns, payload))
    return out


def submit_batch(address: str, txs: list[Tx], timeout: float = 10.0) -> list[str]:
    """Submit in one request; the node's verdict per transaction ("pending" = accepted)."""
    body = cbor2.dumps([tx.data for tx in txs])
    answer = post(address, BATCH_PATH, body, timeout=timeout)
    return [r["status"] for r in answer["results"]]


def submit_all(addresses: Sequence[str], txs: Sequence[Tx], batch: int = SUBMIT_BATCH) -> None:
    """Submit ``txs`` as fast as one thread can: requests of ``batch``, round-robin.

    No pacing: the next request leaves as soon as the previous one is answered
    (the bench's saturation backlog, and its run against a :class:`NullSink`).
    """
    for k in range(0, len(txs), batch):
        submit_batch(addresses[(k // batch) % len(addresses)], list(txs[k : k + batch]))


def stop_child(proc: subprocess.Popen[str], timeout_s: float) -> int:
    """Close a child's stdin (its signal to exit) and wait; terminate it if it lingers."""
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        return proc.wait()


def cpu_seconds_of(pid: int) -> float:
    """CPU time (user + system) of a process so far, from /proc (NaN where unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass
class Watcher:
    """Follows one node's decrypted batches from a height, noting when each digest appears."""

    address: str
    next_height: int = 1
    seen: dict[bytes, tuple[float, int, bytes | None]] = field(default_factory=dict)
    log: list[tuple[int, str, tuple[tuple[str, str, str | None], ...]]] = field(
        default_factory=list
    )

    def poll(self) -> int:
        """Read every newly decrypted batch; how many were read."""
        read = 0
        while True:
            try:
                batch = get_json(self.address, f"/v1/batches/{self.next_height}")
            except ClientError:
                return read  # not decrypted yet (404) or the node is down
            now = time.monotonic()
            txs = tuple(
                (t["namespace"], t["digest"], t["plaintext"]) for t in batch["transactions"]
            )
            self.log.append((batch["height"], batch["block_hash"], txs))
            for _, digest, plaintext in txs:
                raw = None if plaintext is None else bytes.fromhex(plaintext)
                self.seen.setdefault(bytes.fromhex(digest), (now, batch["height"], raw))
            self.next_height += 1
            read += 1


class JsonLinesChild:
    """A child process that reports one JSON object per line, read by a thread here.

    Why a child: a follower that verifies batches or reads streams needs its
    own GIL and CPU, or it would slow what it measures. Subclasses handle each
    message in :meth:`_on_message`; the child exits when its stdin closes
    (:meth:`stop`, or this process dying).
    """

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._on_message(json.loads(line))

    def _on_message(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        """Whether the child still runs (if not, nothing more will arrive: do not wait for it)."""
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15) -> int | None:
        """Close the child's stdin and wait for it (terminate it if it lingers); its exit code."""
        code = stop_child(self.proc, timeout_s)
        self._reader.join(timeout=5)
        return code


class RollupFollower(JsonLinesChild):
    """Every namespace's verified batches from ``from_height`` on, noting when each digest arrived.

    One ``Subscription`` per namespace (WebSocket carrier by default, ``nodes[0]``
    first and the others only if it fails; or gossip, from every validator),
    all in one child process. ``seen`` maps each
    transaction digest to (``time.monotonic()`` when its ``VerifiedBatch`` was
    handed to the reader, height): the clock is system-wide, so it compares
    with submit times taken here. ``latest`` is the last height read per
    namespace. ``stall_s``: a node that sends no new height for this long is
    left for the next (the client library's default when None). The child
    exits when its stdin closes (:meth:`stop`, or this process dying).
    """

    def __init__(
        self,
        genesis_path: Path,
        namespaces: Sequence[str],
        from_height: int,
        nodes: Sequence[str],
        carrier: str = "websocket",
        stall_s: float | None = None,
    ) -> None:
        self.seen: dict[bytes, tuple[float, int]] = {}
        self.latest: dict[str, int] = {}
        self._cpu_t: list[float] = []  # when each CPU sample was taken (monotonic)
        self._cpu_s: list[float] = []  # the child's CPU seconds (user + system) then
        command = [sys.executable, "-m", "ops.load", "follow", str(genesis_path)]
        if stall_s is not None:
            command.insert(4, f"--stall-s={stall_s:g}")
        super().__init__([*command, str(from_height), ",".join(nodes), carrier, *namespaces])

    def _on_message(self, message: dict[str, Any]) -> None:
        if "cpu" in message:
            self._cpu_t.append(message["t"])
            self._cpu_s.append(message["cpu"])
            return
        arrived, height = message["t"], message["h"]
        for digest in message["d"]:
            self.seen.setdefault(bytes.fromhex(digest), (arrived, height))
        self.latest[message["ns"]] = height

    def wait_following(self, namespaces: Iterable[str], timeout_s: float) -> bool:
        """Whether every namespace's stream delivered a batch within ``timeout_s``."""
        wanted = set(namespaces)
        deadline = time.monotonic() + timeout_s
        while not wanted <= self.latest.keys():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return True

    def cpu_seconds(self, at: float) -> tuple[float, float]:
        """(when, CPU seconds) of the child's last CPU sample taken no later than ``at``."""
        k = bisect.bisect_right(self._cpu_t, at) - 1
        if k < 0:
            return at, 0.0
        return self._cpu_t[k], self._cpu_s[k]

    def cpu_share(self, start: float, end: float) -> float:
        """The child's CPU time between two moments, as a fraction of one core."""
        t0, c0 = self.cpu_seconds(start)
        t1, c1 = self.cpu_seconds(end)
        return (c1 - c0) / (t1 - t0) if t1 > t0 else float("nan")


class NullSink:
    """A node's batch ingress that accepts everything and checks nothing, in a child process.

    ``python -m ops.load sink``: a stdlib ``ThreadingHTTPServer`` on 127.0.0.1
    (an ephemeral port, the child's first line of output) that answers
    ``POST /v1/transactions/batch`` as a node does, a JSON ``{"results": [...]}``
    with ``{"digest", "status": "pending"}`` per item of the CBOR array, without
    decoding or checking the ciphertexts. Its own process, so that it does not
    share the load client's GIL; the child exits when its stdin closes.
    """

    def __init__(self) -> None:
        command = [sys.executable, "-m", "ops.load", "sink"]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise ClientError(f"the null sink did not start (it said {line!r})")
        self.address = f"127.0.0.1:{int(line)}"

    def cpu_seconds(self) -> float:
        """The child's CPU time so far (NaN without /proc)."""
        return cpu_seconds_of(self.proc.pid)

    def stop(self) -> int | None:
        """Close the child's stdin and wait for it (terminate it if it lingers); its exit code."""
        code = stop_child(self.proc, 10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def __enter__(self) -> NullSink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _SinkHandler(BaseHTTPRequestHandler):
    """(child) Every batch accepted: one pending verdict per item, the node's digest."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path != BATCH_PATH:
            self._answer(404, {"error": "not found"})
            return
        results = [
            {"digest": digest_of_encoding(item).hex(), "status": "pending"}
            for item in cbor2.loads(body)
        ]
        self._answer(200, {"results": results})

    def _answer(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: a line per request on stderr otherwise


def _sink() -> None:
    """(child) Serve the null sink until stdin closes; its port first, on stdout."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SinkHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    while sys.stdin.read(65536):
        pass
    server.shutdown()
    server.server_close()


async def _follow(
    genesis: Genesis,
    namespaces: Sequence[str],
    start: int,
    nodes: list[str],
    carrier: Any,
    stall_s: float | None = None,
) -> None:
    """(child) One Subscription per namespace; a JSON line per verified batch and CPU sample."""
    import trio

    from sequencer_net.client.subscribe import STALL_S, Subscription

    def emit(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    async def follow(namespace: str) -> None:
        stall = STALL_S if stall_s is None else stall_s
        sub = Subscription(genesis, namespace, start, nodes, carrier=carrier, stall_s=stall)
        async with sub.batches() as batches:
            async for batch in batches:
                arrived = time.monotonic()
                digests = [leaf.digest.hex() for leaf in batch.leaves]
                header = batch.batch_hash.hex()
                emit({"ns": namespace, "h": batch.height, "t": arrived, "d": digests, "b": header})

    async def sample_cpu() -> None:
        while True:
            emit({"t": time.monotonic(), "cpu": time.process_time()})
            await trio.sleep(CPU_SAMPLE_S)

    async def until_stdin_closes(done: trio.CancelScope) -> None:
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        while await stdin.receive_some():
            pass
        done.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(until_stdin_closes, nursery.cancel_scope)
        nursery.start_soon(sample_cpu)
        for namespace in namespaces:
            nursery.start_soon(follow, namespace)


def main(argv: Sequence[str]) -> int:
    """``python -m ops.load follow [--stall-s=S] GENESIS FROM_HEIGHT NODE[,NODE...] CARRIER
    NAMESPACE...`` or ``python -m ops.load sink``."""
    if argv == ["sink"]:
        _sink()
        return 0
    stall_s = None
    if len(argv) > 1 and argv[1].startswith("--stall-s="):
        stall_s = float(argv[1].partition("=")[2])
        argv = [argv[0], *argv[2:]]
    if len(argv) < 6 or argv[0] != "follow":
        print(main.__doc__, file=sys.stderr)
        return 2
    import trio

    genesis = load_genesis(Path(argv[1]))
    trio.run(_follow, genesis, argv[5:], int(argv[2]), argv[3].split(","), argv[4], stall_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
