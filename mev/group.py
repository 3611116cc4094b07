"""The prime-order Ed25519 group through libsodium: points, scalars and hashes into both.

Points are 32-byte compressed encodings; scalars are Python ints in ``[0, L)``,
converted to little-endian bytes at the libsodium boundary. Every point that
comes from outside must pass :func:`check_point` (on the curve, in the
prime-order subgroup, not of small order) before any arithmetic touches it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import nacl.bindings as sodium
import nacl.exceptions

L = 2**252 + 27742317777372353535851937790883648493  # order of the prime subgroup
POINT_BYTES = 32
SCALAR_BYTES = 32

RandomBytes = Callable[[int], bytes]


class InvalidPoint(ValueError):
    """Bytes that are not a point of the prime-order subgroup (or the identity)."""


def check_point(point: bytes) -> bytes:
    """Return ``point`` if it is a valid element of the main subgroup, else raise."""
    if len(point) != POINT_BYTES or not sodium.crypto_core_ed25519_is_valid_point(point):
        raise InvalidPoint("not a point of the prime-order subgroup")
    return point


def is_point(point: bytes) -> bool:
    try:
        check_point(point)
    except InvalidPoint:
        return False
    return True


def scalar_bytes(s: int) -> bytes:
    return (s % L).to_bytes(SCALAR_BYTES, "little")


def base_mul(s: int) -> bytes:
    """``s * G`` with the precomputed base-point tables (about 5x faster than ``mul``)."""
    return _nonzero(lambda: sodium.crypto_scalarmult_ed25519_base_noclamp(scalar_bytes(s)), s)


def mul(s: int, point: bytes) -> bytes:
    """``s * P`` for a point already known to be valid."""
    return _nonzero(lambda: sodium.crypto_scalarmult_ed25519_noclamp(scalar_bytes(s), point), s)


def _nonzero(op: Callable[[], bytes], s: int) -> bytes:
    if s % L == 0:
        raise ValueError("scalar is zero: the result would be the identity")
    try:
        return op()
    except nacl.exceptions.RuntimeError as exc:  # identity result: never for valid inputs
        raise InvalidPoint("scalar multiplication gave the identity") from exc


def add(p: bytes, q: bytes) -> bytes:
    return sodium.crypto_core_ed25519_add(p, q)


def sub(p: bytes, q: bytes) -> bytes:
    return sodium.crypto_core_ed25519_sub(p, q)


def point_sum(points: Iterable[bytes]) -> bytes:
    """``P_1 + P_2 + ...`` of at least one point."""
    total: bytes | None = None
    for p in points:
        total = p if total is None else add(total, p)
    if total is None:
        raise ValueError("empty sum")
    return total


def linear_combination(terms: Iterable[tuple[int, bytes]]) -> bytes:
    """``sum(s_i * P_i)``: one variable-base multiplication per term."""
    return point_sum(mul(s, p) for s, p in terms)


def hash_to_scalar(domain: bytes, *parts: bytes) -> int:
    """A uniform scalar from SHA-512 over length-prefixed parts (never zero)."""
    digest = hashlib.sha512(_framed(domain, parts)).digest()
    return int.from_bytes(digest, "little") % (L - 1) + 1


def hash_to_point(domain: bytes, *parts: bytes) -> bytes:
    """A point with unknown discrete log (Elligator 2, then cleared cofactor)."""
    uniform = hashlib.sha256(_framed(domain, parts)).digest()
    return check_point(sodium.crypto_core_ed25519_from_uniform(uniform))


def _framed(domain: bytes, parts: Sequence[bytes]) -> bytes:
    out = [len(domain).to_bytes(2, "big"), domain]
    for part in parts:
        out += [len(part).to_bytes(4, "big"), part]
    return b"".join(out)


def random_scalar(random_bytes: RandomBytes) -> int:
    """A uniform non-zero scalar from a byte source (os.urandom, or seeded for vectors)."""
    return int.from_bytes(random_bytes(64), "little") % (L - 1) + 1


def lagrange_at(x: int, points: Sequence[int]) -> list[int]:
    """Coefficients that interpolate ``f(x)`` from ``f`` at distinct ``points`` (not x)."""
    if len(set(points)) != len(points) or x in points:
        raise ValueError("interpolation points must be distinct and differ from x")
    coefficients = []
    for i in points:
        num, den = 1, 1
        for j in points:
            if j != i:
                num = num * (x - j) % L
                den = den * (i - j) % L
        coefficients.append(num * pow(den, -1, L) % L)
    return coefficients


def lagrange_at_zero(indices: Sequence[int]) -> list[int]:
    """Coefficients that interpolate f(0) from f(i) at the given distinct 1-based points."""
    if any(i <= 0 for i in indices):
        raise ValueError("interpolation points must be distinct and positive")
    return lagrange_at(0, indices)


G = base_mul(1)
# A second generator nobody knows the discrete log of (TDH2's g-bar).
G_BAR = hash_to_point(b"seqnet/tdh2/g-bar/v1")


def seeded_random_bytes(seed: bytes) -> RandomBytes:
    """A deterministic byte source (SHAKE-256 stream): for test vectors and simulations only."""
    counter = 0

    def draw(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(n)

    return draw
