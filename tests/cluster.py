"""Helpers for tests that run validators for real on 127.0.0.1."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import trio

from mev import group, kem
from ops import health
from sequencer_net.base import codec
from sequencer_net.node.genesis import Genesis, load_genesis
from sequencer_net.node.network import members
from sequencer_net.node.storage import Store


def free_base_port(count: int, spacing: tuple[int, ...] = (0,)) -> int:
    """A base port with ``count`` free consecutive ports at each offset in ``spacing``."""
    for _ in range(100):
        base = random.randrange(20_000, 29_000)  # below the ephemeral range (32768+)
        try:
            for offset in spacing:
                for port in range(base + offset, base + offset + count):
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def encrypted(genesis: Genesis, namespace: str, payload: bytes) -> bytes:
    """A client's transaction: ``payload`` threshold-encrypted for ``namespace``."""
    ct = kem.encrypt(genesis.threshold_key, genesis.chain_id, namespace, payload, os.urandom)
    return codec.encode(ct)


def unopenable(genesis: Genesis, namespace: str) -> bytes:
    """A ciphertext whose signature holds for this network but whose key check fits no key.

    It is admitted and ordered, then judged invalid on every node; no peer's
    stored key can prove that verdict (only the shares can).
    """
    r, u = group.even_y(group.random_scalar(os.urandom))
    key_check, sealed = os.urandom(16), os.urandom(40)
    label = kem.label(genesis.chain_id, namespace, genesis.threshold_key.fingerprint)
    signature = group.schnorr_sign(r, kem.signed_message(label, key_check, sealed), os.urandom(32))
    return codec.encode(kem.Ciphertext(namespace, u, key_check, sealed, signature))


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polls progress
            await trio.sleep(0.05)


HOSTILE_REASONS = ("decode", "signature", "not-a-validator", "wrong-sender", "bad-share")


def rejections(registry: object) -> dict[tuple[str, str], float]:
    """``seqnet_messages_rejected`` by (protocol, reason), from a node's registry."""
    return _by_reason(registry, "seqnet_messages_rejected")


def ignored(registry: object) -> dict[tuple[str, str], float]:
    """``seqnet_messages_ignored`` by (protocol, reason), from a node's registry."""
    return _by_reason(registry, "seqnet_messages_ignored")


def _by_reason(registry: object, name: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in registry.collect():  # type: ignore[attr-defined]
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                out[(sample.labels["protocol"], sample.labels["reason"])] = sample.value
    return out


def hostile(registry: object) -> dict[tuple[str, str], float]:
    """Rejections that mean malformed or forged input (not protocol races like a late vote)."""
    return {
        key: value
        for key, value in rejections(registry).items()
        if any(word in key[1] for word in HOSTILE_REASONS)
    }


class Processes:
    """N real `seqnet node` processes on 127.0.0.1 from a fresh `seqnet keygen`."""

    def __init__(
        self,
        directory: pathlib.Path,
        n: int = 4,
        heartbeat_ms: int | None = None,
        test_network: bool = False,
    ):
        """``test_network``: ``keygen --test-network`` (admin endpoints, base + 3000 + i)."""
        self.dir, self.n = directory, n
        base = free_base_port(n, (0, 1000, 2000, 3000) if test_network else (0, 1000, 2000))
        options = ["--test-network"] if test_network else []
        subprocess.run(
            seqnet(
                "keygen", "--nodes", str(n), "--dir", str(directory), "--base-port", str(base),
                *options,
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        if heartbeat_ms is not None:
            for i in range(n):
                path = directory / f"node-{i}.toml"
                path.write_text(path.read_text() + f"heartbeat_ms = {heartbeat_ms}\n")
        self.members = members(directory)
        self.genesis = load_genesis(directory / "genesis.json")
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n

    def start(self, i: int, *extra: str) -> None:
        log = (self.dir / f"node-{i}.log").open("ab")
        cmd = seqnet("node", "--config", str(self.dir / f"node-{i}.toml"), *extra)
        self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i)

    def kill(self, i: int) -> None:
        """SIGKILL: no chance to clean up."""
        proc = self.procs[i]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.procs[i] = None

    def stop(self, i: int) -> int:
        """SIGTERM: the node closes its store; its exit code."""
        proc = self.procs[i]
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        self.procs[i] = None
        return proc.wait(timeout=30)

    def stop_all(self) -> list[int]:
        """SIGTERM every running node; their exit codes (also kept in ``exit_codes``)."""
        running = [p for p in self.procs if p is not None]
        for p in running:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        self.exit_codes = [p.wait(timeout=30) for p in running]
        return self.exit_codes

    def api(self, i: int) -> str:
        return self.members[i].api

    def status(self, i: int) -> dict[str, Any] | None:
        return health.node_status(self.members[i])

    def height(self, i: int) -> int:
        s = self.status(i)
        return -1 if s is None else int(s["height"])

    def certified(self, i: int) -> int:
        """Node ``i``'s certified height; -1 while it does not answer."""
        s = self.status(i)
        return -1 if s is None else int(s.get("certified_height", -1))

    def store(self, i: int) -> Store:
        return Store(self.dir / f"node-{i}.db", self.genesis.chain_id)

    def wait_committing(self, seconds: float = 60) -> None:
        wait_until(
            lambda: all(health.is_committing(self.status(i), self.n) for i in range(self.n)),
            seconds,
        )


@contextmanager
def committing(directory: pathlib.Path, n: int = 4) -> Iterator[Processes]:
    """``n`` fresh node processes, once all commit; every node stopped (SIGTERM) on exit."""
    c = Processes(directory, n)
    c.start_all()
    try:
        c.wait_committing()
        yield c
    finally:
        c.stop_all()


@asynccontextmanager
async def committing_async(directory: pathlib.Path, n: int = 4) -> AsyncIterator[Processes]:
    """:func:`committing` for trio tests (the waiting runs in a thread)."""
    c = Processes(directory, n)
    c.start_all()
    try:
        await trio.to_thread.run_sync(c.wait_committing)
        yield c
    finally:
        c.stop_all()


def seqnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "sequencer_net.cli", *args]


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def post_tx(address: str, data: bytes) -> tuple[int, Any]:
    """POST one ciphertext; (HTTP status, JSON answer) also for refusals."""
    request = urllib.request.Request(
        f"http://{address}/v1/transactions",
        data=data,
        headers={"content-type": "application/cbor"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
