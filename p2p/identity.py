"""Peer ids: how libp2p names a node from its ed25519 public key.

Computed here, without a libp2p host, so a genesis file can be written and
checked (each validator's peer id must be its key's) by code that runs no
network.
"""

from __future__ import annotations

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def peer_id(ed25519_public_key: bytes) -> str:
    """The libp2p peer id of an ed25519 key: base58 of the identity multihash of its protobuf."""
    protobuf = b"\x08\x01\x12\x20" + ed25519_public_key  # KeyType Ed25519, 32-byte Data
    multihash = b"\x00" + bytes([len(protobuf)]) + protobuf  # identity hash: the key inline
    number, out = int.from_bytes(multihash, "big"), ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    return "1" * (len(multihash) - len(multihash.lstrip(b"\x00"))) + out
