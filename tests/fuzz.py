"""Byte-mutation fuzzing of the codec: every input is rejected, or is the one encoding of a value.

The property checked for each mutated input is the codec's contract: decoding
raises :class:`DecodeError` (the only rejection it documents), or it yields a
value whose encoding is exactly the input. A decoder that accepted a second
encoding of some value (trailing bytes, a longer integer, a reordered map) or
that decoded to something it cannot encode back fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from sequencer_net.base.codec import DecodeError

# Bytes that sit on CBOR boundaries: each major type's first header, the one-byte
# and longer length forms, false/true/null/undefined, the break code, and 0xff.
BOUNDARY_BYTES = (
    0x00, 0x01, 0x17, 0x18, 0x19, 0x1B, 0x1F, 0x20, 0x38, 0x40, 0x41, 0x58, 0x5F,
    0x60, 0x78, 0x80, 0x81, 0x98, 0x9F, 0xA0, 0xA1, 0xB8, 0xBF, 0xC0, 0xD8, 0xF4,
    0xF5, 0xF6, 0xF7, 0xF9, 0xFF,
)  # fmt: skip


def decodes_canonically_or_rejects(
    decode: Callable[[bytes], Any], encode: Callable[[Any], bytes], data: bytes
) -> bool:
    """Assert the contract for ``data``; True when it was accepted."""
    try:
        value = decode(data)
    except DecodeError:
        return False
    again = encode(value)
    assert again == data, f"accepted {data.hex()} as {value!r}, which encodes as {again.hex()}"
    return True


@st.composite
def mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with 1 to 4 edits: a byte set or flipped, inserted, deleted, or a cut."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(("set", "flip", "insert", "delete", "truncate", "append")))
        where = draw(st.integers(0, max(0, len(data) - 1)))
        byte = draw(st.integers(0, 255) | st.sampled_from(BOUNDARY_BYTES))
        if edit == "set" and data:
            data[where] = byte
        elif edit == "flip" and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif edit == "insert":
            data.insert(where, byte)
        elif edit == "delete" and data:
            del data[where]
        elif edit == "truncate":
            del data[where:]
        elif edit == "append":
            data.append(byte)
    return bytes(data)


def single_byte_mutants(original: bytes) -> list[bytes]:
    """Every position of ``original`` set to every boundary byte and to its bit-flips.

    Deterministic and exhaustive over positions: it reaches the opaque fields
    (payloads, hashes, signatures), where a mutant is accepted as another value,
    as well as every header, where it must be refused.
    """
    out: list[bytes] = []
    for i, b in enumerate(original):
        values = {*BOUNDARY_BYTES, *(b ^ (1 << k) for k in range(8))} - {b}
        out.extend(original[:i] + bytes([v]) + original[i + 1 :] for v in sorted(values))
    return out
