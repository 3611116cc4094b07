"""Opening a committed batch: optimistic combination first, proofs only on failure.

Theory of operation
-------------------
Take the share batches of the first ``t`` validators (by index) and, for each
ciphertext, interpolate ``K = Σ λ_i·u_ij`` (``t`` multiplications) and test it
against the ciphertext's key check. If every key checks, no proof is verified
at all. Otherwise verify the batched proofs of the senders, drop and name the
ones that fail, and recombine the failed ciphertexts from ``t`` verified
senders. With verified shares ``K`` is exactly ``x·u``, so a ciphertext whose
payload still does not open is invalid — and every honest node reaches the
same verdict from the same committed bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mev.group import InvalidPoint, lagrange_at_zero, linear_combination
from mev.kem import Ciphertext, key_matches, open_with
from mev.keys import ThresholdPublicKey, evaluation_point
from mev.shares import ShareBatch, verify_share_batch


@dataclass
class Opening:
    """Per ciphertext: the plaintext, or None for a payload that does not open."""

    plaintexts: list[bytes | None]
    keys: list[bytes | None] = field(default_factory=list)  # K per ciphertext, to publish
    blamed: list[int] = field(default_factory=list)  # validators whose shares were bad
    verified_proofs: int = 0  # how many batched proofs had to be checked


class NotEnoughShares(Exception):
    """Fewer than ``t`` usable share batches: wait for more.

    ``blamed``: senders whose batched proof failed on the way (drop theirs).
    """

    def __init__(self, message: str, blamed: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.blamed = list(blamed)


def open_batch(
    public: ThresholdPublicKey,
    chain_id: str,
    batch_id: bytes,
    ciphertexts: Sequence[Ciphertext],
    batches: Mapping[int, ShareBatch],
) -> Opening:
    """Decrypt a committed batch of (already checked) ciphertexts from share batches."""
    us = [ct.u for ct in ciphertexts]
    usable = {i: b for i, b in sorted(batches.items()) if _fits(b, batch_id, len(us))}
    first = list(usable)[: public.threshold]
    if len(first) < public.threshold:
        raise NotEnoughShares(f"{len(first)} of {public.threshold} share batches")
    keys = _combine([usable[i] for i in first], range(len(us)))
    failed = [j for j, ct in enumerate(ciphertexts) if not _opens(ct, keys[j])]
    opening = Opening([None] * len(us))
    if failed:
        good = _verified(public, batch_id, us, usable, opening)
        keys.update(_combine([usable[i] for i in good[: public.threshold]], failed))
    opening.keys = [keys[j] for j in range(len(us))]
    for j, ct in enumerate(ciphertexts):
        key = keys[j]
        opening.plaintexts[j] = None if key is None else open_with(public, chain_id, ct, key)
    return opening


def _opens(ct: Ciphertext, key: bytes | None) -> bool:
    return key is not None and key_matches(ct, key)


def _fits(batch: ShareBatch, batch_id: bytes, size: int) -> bool:
    return batch.batch_id == batch_id and len(batch.shares) == size


def _verified(
    public: ThresholdPublicKey,
    batch_id: bytes,
    us: list[bytes],
    usable: dict[int, ShareBatch],
    opening: Opening,
) -> list[int]:
    """Senders whose batched proof holds; the others are named in ``opening.blamed``."""
    good = []
    for i, batch in usable.items():
        opening.verified_proofs += 1
        if batch.node == i and verify_share_batch(public, batch_id, us, batch):
            good.append(i)
            if len(good) == public.threshold:
                break
        else:
            opening.blamed.append(i)
    if len(good) < public.threshold:
        raise NotEnoughShares(
            f"only {len(good)} valid share batches, blamed {opening.blamed}", opening.blamed
        )
    return good


def _combine(
    batches: list[ShareBatch], positions: Sequence[int] | range
) -> dict[int, bytes | None]:
    """``K_j = Σ λ_i·u_ij`` at each position; None where a share is not a usable point."""
    lambdas = lagrange_at_zero([evaluation_point(b.node) for b in batches])
    out: dict[int, bytes | None] = {}
    for j in positions:
        try:
            out[j] = linear_combination(
                (lam, b.shares[j]) for lam, b in zip(lambdas, batches, strict=True)
            )
        except InvalidPoint:
            out[j] = None
    return out


def open_with_keys(
    public: ThresholdPublicKey,
    chain_id: str,
    ciphertexts: Sequence[Ciphertext],
    keys: Sequence[bytes],
) -> list[bytes | None] | None:
    """Open a batch with the ``K`` values another validator published, if all are right.

    Each ``K`` is checked against its ciphertext's key check (a hash), so a wrong
    or malicious value is caught at once; then None is returned and the caller
    combines shares itself. Lets one validator per batch do the combining for all.
    """
    if len(keys) != len(ciphertexts):
        return None
    if not all(key_matches(ct, k) for ct, k in zip(ciphertexts, keys, strict=True)):
        return None
    return [open_with(public, chain_id, ct, k) for ct, k in zip(ciphertexts, keys, strict=True)]
