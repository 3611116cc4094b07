"""What makes a genesis self-consistent, whatever its file says.

A node that started from a hand-edited genesis (say threshold 1 instead of
f + 1, or two validators with one key) would join the network and then
disagree with it on every transaction, so it must refuse to start. These are
the rules; :mod:`sequencer_net.node.genesis` reads and writes the files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import multiaddr
import nacl.bindings as sodium

from mev.keys import check_consistent
from p2p.identity import peer_id
from sequencer_net.base.committee import decryption_threshold

if TYPE_CHECKING:
    from sequencer_net.node.genesis import Genesis, Validator

MAX_CHAIN_ID = 64


class GenesisError(ValueError):
    """A genesis or key file that is missing, malformed or inconsistent."""


def validate(genesis: Genesis) -> None:
    """Raise :class:`GenesisError` naming the first rule ``genesis`` breaks.

    Whatever a file says, a node accepts only a genesis whose numbers follow
    from its validator list (n, f = (n - 1) // 3, t = f + 1), whose validators
    are distinct, and whose threshold key is one polynomial's commitments.
    """
    _check_chain_id(genesis.chain_id)
    _check_validators(genesis.validators)
    _check_threshold(genesis)
    if not genesis.namespaces or len(set(genesis.namespaces)) != len(genesis.namespaces):
        raise GenesisError("namespaces: at least one, and no namespace twice")


def _check_chain_id(chain_id: str) -> None:
    if not 1 <= len(chain_id) <= MAX_CHAIN_ID or not chain_id.isprintable():
        raise GenesisError(f"chain_id: 1 to {MAX_CHAIN_ID} printable characters")


def _check_validators(validators: tuple[Validator, ...]) -> None:
    """Indices 0..n-1; each key a valid ed25519 key with its own peer id; one per address."""
    if not validators:
        raise GenesisError("validators: at least one is required")
    for position, v in enumerate(validators):
        where = f"validators[{position}]"
        if v.index != position:
            raise GenesisError(f"{where}: validators must be listed in index order")
        if not _is_ed25519_key(v.public_key) or v.peer_id != peer_id(v.public_key):
            raise GenesisError(f"{where}: public_key is not a valid key or peer_id does not match")
        _check_address(v.address, where)
    for name in ("public_key", "peer_id", "address"):
        _check_distinct([getattr(v, name) for v in validators], name)


def _is_ed25519_key(key: bytes) -> bool:
    """On the curve, canonical, in the prime-order subgroup and not of small order."""
    return len(key) == 32 and bool(sodium.crypto_core_ed25519_is_valid_point(key))


def _check_distinct(values: list[Any], name: str) -> None:
    first: dict[Any, int] = {}
    for i, value in enumerate(values):
        if value in first:
            raise GenesisError(f"validators[{i}]: same {name} as validators[{first[value]}]")
        first[value] = i


def _check_address(address: str, where: str) -> None:
    try:
        protocols = [p.name for p in multiaddr.Multiaddr(address).protocols()]
    except Exception:  # multiaddr raises several unrelated types on bad input
        protocols = []
    if "tcp" not in protocols or "p2p" in protocols:
        raise GenesisError(
            f"{where}.address: expected a TCP multiaddr such as /ip4/1.2.3.4/tcp/7100"
        )


def _check_threshold(genesis: Genesis) -> None:
    """t = f + 1, one verification key per validator, all on one polynomial with the key."""
    key, n = genesis.threshold_key, genesis.n
    if key.n != n:
        raise GenesisError(f"threshold: {key.n} verification keys for {n} validators")
    check_t(key.threshold, n)
    try:
        check_consistent(key)
    except ValueError as exc:
        raise GenesisError(f"threshold: {exc}") from None


def check_t(t: int, n: int) -> None:
    if t != decryption_threshold(n):
        raise GenesisError(
            f"threshold: t = {t} but n = {n} validators need t = f + 1 = {decryption_threshold(n)}"
        )
