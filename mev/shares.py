"""Decryption shares for a whole committed batch, with one batched DLEQ proof per node.

Theory of operation
-------------------
For the batch's ciphertexts ``u_1..u_m`` (each lifted to its even-y point)
validator ``i`` publishes ``u_ij = x_i·u_j`` (one scalar multiplication each)
and a single Chaum–Pedersen proof that the same ``x_i`` links ``G -> h_i`` and
``U -> V``, where ``U = Σ ρ_j u_j`` and ``V = Σ ρ_j u_ij`` for weights ``ρ_j``
hashed from the whole batch *including the shares* (Fiat–Shamir). A prover that
changed any share would need the random combination of its errors to vanish,
which it cannot aim for since the weights depend on the errors. Computing
``U`` costs the prover one more multiplication per transaction; ``V = x_i·U``
costs one in total.

Proofs are checked only when an optimistic combination fails (``mev.combine``);
there each share batch costs its verifier two multiplications per transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from mev.committed import MAX_BATCH, CommittedBatch, NotCommitted
from mev.group import (
    ORDER,
    G,
    InvalidPoint,
    base_times,
    element,
    element_sum,
    encode,
    hash_to_scalar,
    lift_x,
    scalar_bytes,
    scalar_from_bytes,
    times,
)
from mev.kem import Scalar
from mev.keys import KeyShare, Point, ThresholdPublicKey
from sequencer_net.base.codec import Digest, IntRange, MaxItems

WEIGHTS_DOMAIN = b"seqnet/shares/weights/v2"
NONCE_DOMAIN = b"seqnet/shares/nonce/v2"
DLEQ_DOMAIN = b"seqnet/shares/dleq/v2"
ZERO = bytes(32)


@dataclass(frozen=True, slots=True)
class ShareBatch:
    """Validator ``node``'s shares for every decryptable ciphertext of ``batch_id``."""

    node: Annotated[int, IntRange(0, 1023)]
    batch_id: Digest
    shares: Annotated[tuple[Point, ...], MaxItems(MAX_BATCH)]
    challenge: Scalar
    response: Scalar


def make_share_batch(
    key: KeyShare, public: ThresholdPublicKey, batch: CommittedBatch
) -> ShareBatch:
    """Shares ``x_i·u_j`` for each decryptable ``u_j`` of a committed batch, and one proof.

    Only a :class:`CommittedBatch` is accepted: shares for anything not committed
    would let whoever asks decrypt transactions before their order is final.
    """
    if not isinstance(batch, CommittedBatch):
        raise NotCommitted(f"shares are made only for a CommittedBatch, not {type(batch).__name__}")
    return _make_shares(key, public, batch.batch_id, [ct.u for ct in batch.decryptable])


def _make_shares(
    key: KeyShare, public: ThresholdPublicKey, batch_id: bytes, us: Sequence[bytes]
) -> ShareBatch:
    """(``us``: x-only ``u`` of checked ciphertexts; InvalidPoint for one that is no point.)"""
    if not us:
        return ShareBatch(key.index, batch_id, (), ZERO, ZERO)
    x = key.secret
    points = [lift_x(u) for u in us]
    shares = tuple(encode(times(x, p)) for p in points)
    h_i = public.verification_keys[key.index]
    weights = _weights(batch_id, key.index, h_i, us, shares)
    big_u = element_sum([times(w, p) for w, p in zip(weights, points, strict=True)])
    u_bytes, v_bytes = encode(big_u), encode(times(x, big_u))
    k = hash_to_scalar(NONCE_DOMAIN, scalar_bytes(x), batch_id, u_bytes)
    c = _dleq_challenge(h_i, u_bytes, v_bytes, encode(base_times(k)), encode(times(k, big_u)))
    z = (k + c * x) % ORDER
    return ShareBatch(key.index, batch_id, shares, scalar_bytes(c), scalar_bytes(z))


def verify_share_batch(
    public: ThresholdPublicKey, batch_id: bytes, us: Sequence[bytes], batch: ShareBatch
) -> bool:
    """True when every share in ``batch`` is ``x_i·u_j`` for the sender's key."""
    if batch.batch_id != batch_id or len(batch.shares) != len(us):
        return False
    if not 0 <= batch.node < public.n:
        return False
    if not us:
        return True
    c, z = scalar_from_bytes(batch.challenge), scalar_from_bytes(batch.response)
    if not (0 < c < ORDER and 0 < z < ORDER):
        return False
    h_i = public.verification_keys[batch.node]
    weights = _weights(batch_id, batch.node, h_i, us, batch.shares)
    try:
        shares = [element(s) for s in batch.shares]
        points = [lift_x(u) for u in us]
        big_u = element_sum([times(w, p) for w, p in zip(weights, points, strict=True)])
        big_v = element_sum([times(w, s) for w, s in zip(weights, shares, strict=True)])
        a = element_sum([base_times(z), times(ORDER - c, element(h_i))])
        b = element_sum([times(z, big_u), times(ORDER - c, big_v)])
    except InvalidPoint:
        return False
    return _dleq_challenge(h_i, encode(big_u), encode(big_v), encode(a), encode(b)) == c


def _weights(
    batch_id: bytes, node: int, h_i: bytes, us: Sequence[bytes], shares: Sequence[bytes]
) -> list[int]:
    seed = hashlib.sha512(
        b"".join([WEIGHTS_DOMAIN, batch_id, node.to_bytes(2, "big"), h_i, *us, *shares])
    ).digest()
    return [hash_to_scalar(seed, j.to_bytes(4, "big")) for j in range(len(us))]


def _dleq_challenge(h_i: bytes, big_u: bytes, big_v: bytes, a: bytes, b: bytes) -> int:
    return hash_to_scalar(DLEQ_DOMAIN, G, h_i, big_u, big_v, a, b)
