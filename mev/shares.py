"""Decryption shares for a whole committed batch, with one batched DLEQ proof per node.

Theory of operation
-------------------
For the batch's ciphertexts ``u_1..u_m`` validator ``i`` publishes ``u_ij = x_i·u_j``
(one scalar multiplication each) and a single Chaum–Pedersen proof that the
same ``x_i`` links ``G -> h_i`` and ``U -> V``, where ``U = Σ ρ_j u_j`` and
``V = Σ ρ_j u_ij`` for weights ``ρ_j`` hashed from the whole batch *including
the shares* (Fiat–Shamir). A prover that changed any share would need the
random combination of its errors to vanish, which it cannot aim for since the
weights depend on the errors. Computing ``U`` costs the prover one more
multiplication per transaction; ``V = x_i·U`` costs one in total.

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
    G,
    InvalidPoint,
    L,
    base_mul,
    check_point,
    hash_to_scalar,
    linear_combination,
    mul,
    scalar_bytes,
    sub,
)
from mev.kem import Scalar
from mev.keys import KeyShare, Point, ThresholdPublicKey
from sequencer_net.base.codec import Digest, IntRange, MaxItems

WEIGHTS_DOMAIN = b"seqnet/shares/weights/v1"
NONCE_DOMAIN = b"seqnet/shares/nonce/v1"
DLEQ_DOMAIN = b"seqnet/shares/dleq/v1"
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
    x = key.secret
    shares = tuple(mul(x, u) for u in us)
    if not shares:
        return ShareBatch(key.index, batch_id, (), ZERO, ZERO)
    h_i = public.verification_keys[key.index]
    big_u = linear_combination(zip(_weights(batch_id, key.index, h_i, us, shares), us, strict=True))
    big_v = mul(x, big_u)
    k = hash_to_scalar(NONCE_DOMAIN, scalar_bytes(x), batch_id, big_u)
    c = _dleq_challenge(h_i, big_u, big_v, base_mul(k), mul(k, big_u))
    z = (k + c * x) % L
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
    try:
        for share in batch.shares:
            check_point(share)
    except InvalidPoint:
        return False
    c, z = int.from_bytes(batch.challenge, "little"), int.from_bytes(batch.response, "little")
    if not (0 < c < L and 0 < z < L):
        return False
    h_i = public.verification_keys[batch.node]
    weights = _weights(batch_id, batch.node, h_i, us, batch.shares)
    big_u = linear_combination(zip(weights, us, strict=True))
    big_v = linear_combination(zip(weights, batch.shares, strict=True))
    try:
        a = sub(base_mul(z), mul(c, h_i))
        b = sub(mul(z, big_u), mul(c, big_v))
    except InvalidPoint:
        return False
    return _dleq_challenge(h_i, big_u, big_v, a, b) == c


def _weights(
    batch_id: bytes, node: int, h_i: bytes, us: Sequence[bytes], shares: Sequence[bytes]
) -> list[int]:
    seed = hashlib.sha512(
        b"".join([WEIGHTS_DOMAIN, batch_id, node.to_bytes(2, "big"), h_i, *us, *shares])
    ).digest()
    return [hash_to_scalar(seed, j.to_bytes(4, "big")) for j in range(len(us))]


def _dleq_challenge(h_i: bytes, big_u: bytes, big_v: bytes, a: bytes, b: bytes) -> int:
    return hash_to_scalar(DLEQ_DOMAIN, G, h_i, big_u, big_v, a, b)
