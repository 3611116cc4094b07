"""The encrypted mempool: strict admission, dedup, caps, oldest-first eviction."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mev import group, kem
from mev.keys import deal
from mev.mempool import EncryptedMempool, MempoolLimits
from sequencer_net.base import codec

CHAIN = "mempool-chain"
PUBLIC, _ = deal(4, 2, group.seeded_random_bytes(b"mempool"))
RNG = group.seeded_random_bytes(b"mempool-encryptions")


def wire(payload: bytes, namespace: str = "a") -> bytes:
    return codec.encode(kem.encrypt(PUBLIC, CHAIN, namespace, payload, RNG))


def pool(**limits: int) -> EncryptedMempool:
    return EncryptedMempool(PUBLIC, CHAIN, ["a", "b"], MempoolLimits(**limits))


def test_accepts_then_refuses_a_duplicate() -> None:
    mp, data = pool(), wire(b"x")
    first = mp.add(data)
    assert first.accepted and first.digest in mp
    assert mp.add(data).reason == "duplicate"
    assert len(mp) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 70_000, "oversized"),
        (b"\xa1\x01", "malformed"),
        (b"", "malformed"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    assert pool().add(data).reason == reason


def test_unknown_namespace_and_bad_proof_are_refused() -> None:
    mp = pool()
    assert mp.add(wire(b"x", "c")).reason == "unknown-namespace"
    ct = codec.decode(kem.Ciphertext, wire(b"y"))
    assert mp.add(codec.encode(replace(ct, namespace="b"))).reason == "bad-proof"
    assert len(mp) == 0


def test_a_ciphertext_for_another_key_or_with_a_bad_point_is_refused() -> None:
    mp = pool()
    other, _ = deal(4, 2, group.seeded_random_bytes(b"another committee"))
    theirs = codec.encode(kem.encrypt(other, CHAIN, "a", b"x", RNG))
    assert mp.add(theirs).reason == "bad-proof"
    ct = codec.decode(kem.Ciphertext, wire(b"y"))
    assert mp.add(codec.encode(replace(ct, u=bytes(32)))).reason == "bad-point"
    assert len(mp) == 0


def test_committed_transactions_are_dropped_and_replays_refused() -> None:
    mp, data = pool(), wire(b"x")
    digest = mp.add(data).digest
    dropped = mp.mark_committed([digest, b"\x00" * 32])  # the second was never here
    assert len(mp) == 0 and mp.add(data).reason == "duplicate"
    # what it hands to decryption: the decoded ciphertext of what it held, nothing else
    assert dropped == {digest: codec.decode(kem.Ciphertext, data)}


def test_take_gives_the_oldest_that_fit_without_removing() -> None:
    mp = pool()
    digests = [mp.add(wire(b"tx%d" % i)).digest for i in range(5)]
    taken = mp.take(max_count=3, max_bytes=10**6)
    assert [e.digest for e in taken] == digests[:3] and len(mp) == 5
    one = taken[0].size
    assert len(mp.take(max_count=10, max_bytes=2 * one + 1)) == 2


def test_namespace_cap_evicts_that_namespaces_oldest() -> None:
    size = len(wire(b"p" * 100))
    mp = pool(max_namespace_bytes=3 * size)
    a = [mp.add(wire(b"p" * 100, "a")).digest for _ in range(3)]
    b = mp.add(wire(b"p" * 100, "b")).digest
    newest = mp.add(wire(b"p" * 100, "a")).digest
    assert a[0] not in mp and all(d in mp for d in [*a[1:], b, newest])
    assert mp.evicted == 1 and mp.namespace_sizes() == {"a": 3, "b": 1}


def test_total_cap_evicts_the_oldest_overall() -> None:
    mp = pool(max_total_count=3)
    digests = [mp.add(wire(b"tx%d" % i, "ab"[i % 2])).digest for i in range(5)]
    assert [d in mp for d in digests] == [False, False, True, True, True]
    assert len(mp) == 3
