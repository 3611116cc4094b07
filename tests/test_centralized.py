"""The centralized baseline (``ops.centralized``) as real processes on 127.0.0.1: what the bench
compares seqnet against must itself order, refuse and keep what it acknowledged."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from ops.centralized import (
    MAX_TX_BYTES,
    CentralizedProcess,
    Subscriber,
    encode_tx,
    make_plain_txs,
)
from ops.load import Tx, submit_batch
from sequencer_net.client.http import ClientError, get_json, post
from tests.cluster import wait_until

NAMESPACES = ["alpha", "beta"]
BLOCK_MS = 20


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "centralized.sqlite"


@pytest.fixture
def sequencer(database: Path) -> Iterator[CentralizedProcess]:
    seq = CentralizedProcess(database, NAMESPACES, BLOCK_MS)
    yield seq
    assert seq.stop() == 0  # SIGTERM: a clean stop


@pytest.fixture
def subscriber(sequencer: CentralizedProcess) -> Iterator[Subscriber]:
    sub = Subscriber(sequencer.address, NAMESPACES)
    assert sub.wait_ready(NAMESPACES, 15), sub.error
    yield sub
    sub.stop()


def submit_in_requests(address: str, txs: list[Tx], size: int) -> list[Tx]:
    """``txs`` in requests of ``size``, one after the other; those acknowledged (pending)."""
    acked = []
    for k in range(0, len(txs), size):
        chunk = txs[k : k + size]
        statuses = submit_batch(address, chunk)
        acked += [tx for tx, status in zip(chunk, statuses, strict=True) if status == "pending"]
    return acked


def delivered(sub: Subscriber, namespace: str) -> list[tuple[int, list[bytes]]]:
    return [(height, digests) for ns, height, digests in sub.log if ns == namespace]


def assert_in_order(sub: Subscriber, txs: list[Tx]) -> None:
    """Each namespace's stream: every height once from 1, and ``txs`` in their order."""
    for namespace in NAMESPACES:
        messages = delivered(sub, namespace)
        heights = [height for height, _ in messages]
        assert heights == list(range(1, len(heights) + 1))
        got = [digest for _, digests in messages for digest in digests]
        assert got == [tx.digest for tx in txs if tx.namespace == namespace]


def test_a_subscriber_gets_each_namespace_in_submission_order(
    sequencer: CentralizedProcess, subscriber: Subscriber
) -> None:
    txs = make_plain_txs(63, NAMESPACES, 40)
    acked = submit_in_requests(sequencer.address, txs, 7)
    assert acked == txs
    wait_until(lambda: {tx.digest for tx in txs} <= subscriber.seen.keys(), 10)
    assert_in_order(subscriber, txs)
    heights = [subscriber.seen[tx.digest][1] for tx in txs]
    assert heights == sorted(heights) and heights[-1] >= 9  # a request answered = stored: 9 cuts
    assert get_json(sequencer.address, "/v1/status")["height"] == heights[-1]


def test_malformed_transactions_are_refused_with_a_reason(
    sequencer: CentralizedProcess, subscriber: Subscriber
) -> None:
    good = encode_tx("alpha", b"fine")
    items = [
        b"\xff",  # not CBOR
        cbor2.dumps(7),
        cbor2.dumps(["alpha"]),
        cbor2.dumps(["alpha", "text, not bytes"]),
        b"\x82\x78\x05alpha\x41x",  # ["alpha", b"x"] with a non-minimal length: not canonical
        encode_tx("gamma", b"x"),
        encode_tx("alpha", b"x" * MAX_TX_BYTES),
        good,
        good,
    ]
    answer = post(sequencer.address, "/v1/transactions/batch", cbor2.dumps(items))
    statuses = [r["status"] for r in answer["results"]]
    refused = ["unknown-namespace", "oversized"]
    assert statuses == [*["malformed"] * 5, *refused, "pending", "duplicate"]
    assert [r["digest"] for r in answer["results"][:5]] == [""] * 5
    assert submit_batch(sequencer.address, [Tx(good, b"", "alpha", b"fine")]) == ["duplicate"]
    with pytest.raises(ClientError) as not_a_list:
        post(sequencer.address, "/v1/transactions/batch", cbor2.dumps({"not": "a list"}))
    assert not_a_list.value.status == 400 and "CBOR array" in str(not_a_list.value.reason)
    wait_until(lambda: len(subscriber.log) == len(NAMESPACES), 10)  # one height: the good one
    assert get_json(sequencer.address, "/v1/status")["height"] == 1


def test_nothing_acknowledged_is_lost_to_kill_9(database: Path) -> None:
    """SIGKILL right after the last answer; restarted on the same file, every acknowledged
    transaction is served again in order, and is still refused as a duplicate.

    (A kill leaves the OS's cache in place; ``synchronous=FULL`` is what covers a power cut,
    which a test cannot cause.)
    """
    txs = make_plain_txs(240, NAMESPACES, 64)
    first = CentralizedProcess(database, NAMESPACES, BLOCK_MS)
    try:
        acked = submit_in_requests(first.address, txs, 20)
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(10) == -signal.SIGKILL
    finally:
        first.stop()
    assert acked == txs
    with CentralizedProcess(database, NAMESPACES, BLOCK_MS) as again:
        sub = Subscriber(again.address, NAMESPACES)
        try:
            wait_until(lambda: {tx.digest for tx in acked} <= sub.seen.keys(), 15)
            assert_in_order(sub, acked)
            height = get_json(again.address, "/v1/status")["height"]
            assert submit_batch(again.address, acked[-1:]) == ["duplicate"]
            more = make_plain_txs(2, NAMESPACES, 64, tag="after")
            assert submit_batch(again.address, more) == ["pending", "pending"]
            wait_until(lambda: {tx.digest for tx in more} <= sub.seen.keys(), 10)
            assert {sub.seen[tx.digest][1] for tx in more} == {height + 1}
        finally:
            sub.stop()


def test_sigint_stops_it_cleanly(database: Path) -> None:
    seq = CentralizedProcess(database, NAMESPACES, BLOCK_MS)
    seq.proc.send_signal(signal.SIGINT)
    assert seq.proc.wait(10) == 0
    seq.stop()


def test_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ops.centralized", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "--block-ms" in result.stdout
