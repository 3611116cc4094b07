"""Encrypting a transaction for a rollup: what every client does before it submits.

The payload is sealed to the network's threshold key from the genesis and
labelled with the chain id, the rollup's namespace and the key's fingerprint,
so no validator can read it before its order is final and it cannot be
replayed on another chain, rollup or committee key. One function, so the CLI,
the load generator and programs agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mev import kem
from sequencer_net.base import codec
from sequencer_net.node.genesis import Genesis


@dataclass(frozen=True, slots=True)
class Sealed:
    """A ciphertext as a node accepts it (canonical CBOR) and its digest."""

    data: bytes
    digest: bytes


def seal(genesis: Genesis, namespace: str, payload: bytes) -> Sealed:
    """``payload`` encrypted for ``namespace``; ValueError if the namespace is not registered."""
    if namespace not in genesis.namespaces:
        registered = ", ".join(genesis.namespaces)
        raise ValueError(f"rollup {namespace!r} is not registered (registered: {registered})")
    ct = kem.encrypt(genesis.threshold_key, genesis.chain_id, namespace, payload, os.urandom)
    return Sealed(codec.encode(ct), kem.digest(ct))
