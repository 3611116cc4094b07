"""Benchmark (not a test): per-transaction cost of threshold encryption on one core.

Every figure is also given as a ratio to one raw variable-base scalar
multiplication on secp256k1 (coincurve ``PublicKey.multiply`` on an already
parsed point) measured in the same run, which stays stable on noisy machines.
Measures: encrypt; ciphertext check (one BIP-340 verification); shares alone
and the batched proof on top; optimistic combine at t=2 (n=4) and t=3 (n=7);
share-proof verification (the slow path only); and a full batch per node
(check + share + proof + combine), the figure that bounds throughput.
Usage: ``python bench/threshold_crypto.py [--batch 1000]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import nacl.bindings as sodium

from mev import group, kem
from mev.combine import open_batch, open_with_keys
from mev.committed import CommittedBatch, EncryptedBatch
from mev.keys import deal
from mev.shares import make_share_batch, verify_share_batch
from ordering.events import Commit
from ordering.leader import leader_of
from ordering.messages import Block, QuorumCert, VoteData, block_hash, genesis_qc
from ordering.validation import MessageValidator
from sequencer_net.base import codec
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SigningKey, sign_bytes

CHAIN = "bench-chain"


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of ``repeat`` wall-clock runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ed25519_mult_us() -> float:
    """libsodium's Ed25519 multiplication, the unit of the TDH2 figures docs/encryption.md keeps."""
    s = bytes(range(1, 32)) + b"\x01"
    p = sodium.crypto_scalarmult_ed25519_base_noclamp(bytes(range(2, 33)) + b"\x01")
    samples = [
        timed(lambda: [sodium.crypto_scalarmult_ed25519_noclamp(s, p) for _ in range(200)], 1)
        / 200
        * 1e6
        for _ in range(7)
    ]
    return statistics.median(samples)


def scalar_mult_us() -> float:
    """One variable-base multiplication by a full-size scalar, the library call alone."""
    s, p = group.scalar_bytes(group.hash_to_scalar(b"bench")), group.base_times(987654321)
    samples = [timed(lambda: [p.multiply(s) for _ in range(500)], 1) / 500 * 1e6 for _ in range(7)]
    return statistics.median(samples)


def committed_batch(n: int, cts: list[kem.Ciphertext]) -> CommittedBatch:
    """A batch as consensus would commit it: a block with a real quorum certificate."""
    keys = [SigningKey.derive(f"bench/{i}") for i in range(n)]
    committee = Committee.of(CHAIN, [k.public_key for k in keys])
    block = Block(
        1, 1, leader_of(1, n), genesis_qc(CHAIN), codec.encode(EncryptedBatch(tuple(cts)))
    )
    vote = VoteData(block_hash(block), 1, 1)
    msg = sign_bytes(vote, CHAIN)
    qc = QuorumCert(vote, tuple((i, keys[i].sign_raw(msg)) for i in range(committee.quorum)))
    return CommittedBatch.from_commit(  # ciphertexts were checked on admission (timed apart)
        Commit(block, block_hash(block), qc), MessageValidator(committee), lambda ct, _: True
    )


def shares_alone(x: int, us: list[bytes]) -> list[bytes]:
    """``x·u_j`` for each ciphertext, as ``make_share_batch`` computes them, without the proof."""
    return [group.encode(group.times(x, group.lift_x(u))) for u in us]


def measure_committee(n: int, t: int, m: int) -> list[tuple[str, float]]:
    """Per-transaction seconds of each step for one committee size and a batch of ``m``."""
    public, shares = deal(n, t, os.urandom)
    payload = os.urandom(200)
    start = time.perf_counter()
    cts = [kem.encrypt(public, CHAIN, "rollup-a", payload, os.urandom) for _ in range(m)]
    encrypt_time = time.perf_counter() - start
    check_time = timed(lambda: [kem.check(public, CHAIN, c) for c in cts])
    batch = committed_batch(n, cts)
    us = [c.u for c in cts]
    share_time = timed(lambda: make_share_batch(shares[0], public, batch))
    alone_time = timed(lambda: shares_alone(shares[0].secret, us))
    batches = {i: make_share_batch(shares[i], public, batch) for i in range(n)}
    combine_time = timed(lambda: open_batch(public, CHAIN, batch.batch_id, cts, batches))
    verify_time = timed(lambda: verify_share_batch(public, batch.batch_id, us, batches[1]))
    opening = open_batch(public, CHAIN, batch.batch_id, cts, batches)
    assert opening.plaintexts == [payload] * m and opening.verified_proofs == 0
    keys = [k for k in opening.keys if k is not None]
    adopt_time = timed(lambda: open_with_keys(public, CHAIN, cts, keys))
    per_node_shared = share_time + (combine_time + (n - 1) * adopt_time) / n
    rows = [
        (f"shares alone (x_i·u_j), n={n}", alone_time),
        (f"batched DLEQ proof on top of the shares, n={n}", share_time - alone_time),
        (f"share generation with batched proof, n={n}", share_time),
        (f"optimistic combine + open, t={t}", combine_time),
        (f"share + combine, t={t}: every node combines", share_time + combine_time),
        (f"share + combine, t={t}: one combiner per batch, others adopt its keys", per_node_shared),
        (f"adopt a combiner's keys (key check + open), n={n}", adopt_time),
        (f"verify one sender's batched proof, t={t} (slow path only)", verify_time),
        (
            f"full {m}-tx batch per node, n={n}: check + share + proof + combine",
            check_time + share_time + combine_time,
        ),
    ]
    if n == 4:
        rows = [
            ("encrypt (client), 200-byte payload", encrypt_time),
            ("ciphertext check (each node, on admission)", check_time),
            *rows,
        ]
    return [(label, seconds / m) for label, seconds in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000, help="transactions per batch")
    m = parser.parse_args().batch
    base_before = scalar_mult_us()
    rows = measure_committee(4, 2, m) + measure_committee(7, 3, m)
    base = min(base_before, scalar_mult_us())  # the same core, before and after
    print(f"baseline: one variable-base scalar multiplication = {base:.1f} us")
    print(f"(libsodium Ed25519, the unit of the old TDH2 figures: {ed25519_mult_us():.1f} us)\n")
    print("| operation (per transaction) | us | x scalar mult | tx/s per core |")
    print("|---|---|---|---|")
    for label, seconds in rows:
        us_ = seconds * 1e6
        print(f"| {label} | {us_:.0f} | {us_ / base:.2f} | {1e6 / us_:,.0f} |")


if __name__ == "__main__":
    main()
