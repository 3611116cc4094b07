"""The secp256k1 group through coincurve (libsecp256k1): points, scalars, hashes, BIP-340.

Points travel as 33-byte compressed SEC1 encodings (``02``/``03`` for even/odd
y, then x big-endian); scalars are Python ints modulo :data:`ORDER`, converted
to 32 big-endian bytes at the library boundary. The group has prime order, so a
point that parses is a group element: there is no cofactor and no subgroup
check. The identity has no encoding: an operation whose result would be the
identity raises :class:`InvalidPoint`, a zero scalar raises ``ValueError``.

Every point that comes from outside goes through :func:`element` (or
:func:`check_point`): exactly 33 bytes, prefix ``02``/``03``, ``x < p`` (the
only canonical encoding) and on the curve (libsecp256k1 checks this when it
parses). An :data:`Element` is a parsed point (a coincurve ``PublicKey``): code
that uses one point several times parses it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly

ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # n, a prime
FIELD_PRIME = 2**256 - 2**32 - 977  # p: coordinates are integers mod p
POINT_BYTES = 33
X_BYTES = 32
SCALAR_BYTES = 32
_P_BYTES = FIELD_PRIME.to_bytes(32, "big")  # big-endian bytes compare like the integers

RandomBytes = Callable[[int], bytes]
Element = PublicKey  # a parsed, valid point (never the identity)


class InvalidPoint(ValueError):
    """Bytes that are not the canonical encoding of a point (or a result that is the identity)."""


# ------------------------------------------------------------ points as parsed elements


def element(point: bytes) -> Element:
    """Parse a 33-byte compressed point from outside, or raise :class:`InvalidPoint`."""
    if len(point) != POINT_BYTES or point[0] not in (2, 3) or point[1:] >= _P_BYTES:
        raise InvalidPoint("not a canonical 33-byte compressed point")
    try:
        return PublicKey(point)
    except ValueError:
        raise InvalidPoint("not a point of secp256k1") from None


def lift_x(x: bytes) -> Element:
    """The point with x-coordinate ``x`` and even y (BIP-340's ``lift_x``), or raise."""
    if len(x) != X_BYTES or x >= _P_BYTES:
        raise InvalidPoint("not a canonical 32-byte x-coordinate")
    try:
        return PublicKey(b"\x02" + x)
    except ValueError:
        raise InvalidPoint("no point of secp256k1 has this x-coordinate") from None


def encode(e: Element) -> bytes:
    return e.format()


def times(s: int, e: Element) -> Element:
    """``s * E`` (variable-time: only ever on public data or with the node's own share)."""
    s %= ORDER
    if s == 0:
        raise ValueError("scalar is zero: the result would be the identity")
    return e.multiply(s.to_bytes(SCALAR_BYTES, "big"))


def base_times(s: int) -> Element:
    """``s * G`` with libsecp256k1's precomputed tables (about half a ``times``)."""
    s %= ORDER
    if s == 0:
        raise ValueError("scalar is zero: the result would be the identity")
    return PublicKey.from_valid_secret(s.to_bytes(SCALAR_BYTES, "big"))


def element_sum(elements: Sequence[Element]) -> Element:
    """``E_1 + E_2 + ...`` of at least one element, in one library call."""
    if not elements:
        raise ValueError("empty sum")
    if len(elements) == 1:
        return elements[0]
    try:
        return PublicKey.combine_keys(list(elements))
    except ValueError:
        raise InvalidPoint("the sum is the identity") from None


# ------------------------------------------------------------ points as bytes


def check_point(point: bytes) -> bytes:
    """Return ``point`` if it is the canonical encoding of a group element, else raise."""
    element(point)
    return point


def is_point(point: bytes) -> bool:
    try:
        element(point)
    except InvalidPoint:
        return False
    return True


def base_mul(s: int) -> bytes:
    return encode(base_times(s))


def mul(s: int, point: bytes) -> bytes:
    return encode(times(s, element(point)))


def neg(point: bytes) -> bytes:
    """``-P``: the same x with the other parity (valid exactly when ``point`` is)."""
    if len(point) != POINT_BYTES:
        raise InvalidPoint("not a 33-byte compressed point")
    return bytes((point[0] ^ 1,)) + point[1:]


def add(p: bytes, q: bytes) -> bytes:
    return encode(element_sum([element(p), element(q)]))


def sub(p: bytes, q: bytes) -> bytes:
    return encode(element_sum([element(p), element(neg(q))]))


def point_sum(points: Iterable[bytes]) -> bytes:
    """``P_1 + P_2 + ...`` of at least one point."""
    return encode(element_sum([element(p) for p in points]))


def linear_combination(terms: Iterable[tuple[int, bytes]]) -> bytes:
    """``sum(s_i * P_i)``: one variable-base multiplication per term, one addition call.

    Multiplications by small scalars (and by ``n - small``: libsecp256k1 splits
    scalars with the GLV endomorphism) cost a fraction of a full one, which is
    what Lagrange coefficients of the first ``t`` validators are (2 and -1 for
    t = 2; 3, -3 and 1 for t = 3); ``1`` and ``-1`` cost no multiplication.
    """
    return encode(element_sum([_scaled(s % ORDER, p) for s, p in terms]))


def _scaled(s: int, point: bytes) -> Element:
    if s == 1:
        return element(point)
    if s == ORDER - 1:
        return element(neg(point))  # still canonical iff ``point`` was
    return times(s, element(point))


# ------------------------------------------------------------ BIP-340 Schnorr


def even_y(secret: int) -> tuple[int, bytes]:
    """``(s, x)`` with ``s = ±secret`` such that ``s*G`` has even y, and ``x`` its x-coordinate."""
    point = encode(base_times(secret))
    s = secret % ORDER
    return (s if point[0] == 2 else ORDER - s), point[1:]


def schnorr_sign(secret: int, message: bytes, aux: bytes) -> bytes:
    """BIP-340 signature of a 32-byte ``message`` under ``secret`` (``aux``: 32 fresh bytes)."""
    return PrivateKey(scalar_bytes(secret)).sign_schnorr(message, aux)


def schnorr_verify(x: bytes, signature: bytes, message: bytes) -> bool:
    """BIP-340 verification under the x-only key ``x``; InvalidPoint if ``x`` is no point."""
    if len(x) != X_BYTES or x >= _P_BYTES:
        raise InvalidPoint("not a canonical 32-byte x-coordinate")
    try:
        key = PublicKeyXOnly(x)
    except ValueError:
        raise InvalidPoint("no point of secp256k1 has this x-coordinate") from None
    return len(signature) == 64 and key.verify(signature, message)


# ------------------------------------------------------------ scalars


def scalar_bytes(s: int) -> bytes:
    return (s % ORDER).to_bytes(SCALAR_BYTES, "big")


def scalar_from_bytes(data: bytes) -> int:
    """The integer of 32 big-endian bytes, not reduced: callers check ``0 < s < ORDER``."""
    return int.from_bytes(data, "big")


def hash_to_scalar(domain: bytes, *parts: bytes) -> int:
    """A uniform scalar from SHA-512 over length-prefixed parts (never zero)."""
    digest = hashlib.sha512(framed(domain, parts)).digest()
    return int.from_bytes(digest, "big") % (ORDER - 1) + 1


def framed(domain: bytes, parts: Sequence[bytes]) -> bytes:
    """``u16be(len(domain)) || domain || (u32be(len(part)) || part)*``: unambiguous input."""
    out = [len(domain).to_bytes(2, "big"), domain]
    for part in parts:
        out += [len(part).to_bytes(4, "big"), part]
    return b"".join(out)


def random_scalar(random_bytes: RandomBytes) -> int:
    """A uniform non-zero scalar from a byte source (os.urandom, or seeded for vectors)."""
    return int.from_bytes(random_bytes(64), "big") % (ORDER - 1) + 1


def lagrange_at(x: int, points: Sequence[int]) -> list[int]:
    """Coefficients that interpolate ``f(x)`` from ``f`` at distinct ``points`` (not x)."""
    if len(set(points)) != len(points) or x in points:
        raise ValueError("interpolation points must be distinct and differ from x")
    coefficients = []
    for i in points:
        num, den = 1, 1
        for j in points:
            if j != i:
                num = num * (x - j) % ORDER
                den = den * (i - j) % ORDER
        coefficients.append(num * pow(den, -1, ORDER) % ORDER)
    return coefficients


def lagrange_at_zero(indices: Sequence[int]) -> list[int]:
    """Coefficients that interpolate f(0) from f(i) at the given distinct 1-based points."""
    if any(i <= 0 for i in indices):
        raise ValueError("interpolation points must be distinct and positive")
    return lagrange_at(0, indices)


G = base_mul(1)  # 0279BE66...16F81798, the SEC 2 generator


def seeded_random_bytes(seed: bytes) -> RandomBytes:
    """A deterministic byte source (SHAKE-256 stream): for test vectors and simulations only."""
    counter = 0

    def draw(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(n)

    return draw
