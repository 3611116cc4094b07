"""Ed25519 signatures over domain-separated sign bytes, and the signed envelope.

Sign bytes are ``cbor([domain_tag, chain_id, statement])``, never the wire
bytes: a signature for one purpose or one chain can't be replayed as another.
A :class:`Signed` envelope comes off the wire unchecked; the only way to get a
:class:`Verified` one is :meth:`Signed.verify`, so code that takes ``Verified``
can't be handed an unchecked signature by mistake.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import nacl.bindings
import nacl.exceptions
import nacl.signing

from sequencer_net.base import codec
from sequencer_net.base.codec import IntRange, Signature

SIGNER_INDEX = IntRange(0, 1023)


class Statement(Protocol):
    """Anything signable: a wire dataclass with its own domain tag."""

    DOMAIN: ClassVar[str]


S = TypeVar("S", bound=Statement)


class Signers(Protocol):
    """Who may sign on which chain (a ``Committee``): signing needs no more of it."""

    @property
    def chain_id(self) -> str: ...

    def verify(self, signer: int, message: bytes, signature: bytes) -> bool: ...


class BadSignature(ValueError):
    """A signature that does not verify, or a signer outside the committee."""


def sign_bytes(statement: Any, chain_id: str) -> bytes:
    """The exact bytes an ed25519 key signs for ``statement`` on ``chain_id``."""
    return codec.dumps_plain([statement.DOMAIN, chain_id, codec.to_plain(statement)])


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


class SigningKey:
    """A validator's ed25519 key (32-byte seed)."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    @classmethod
    def derive(cls, label: str) -> SigningKey:
        """A deterministic key from a label: for simulations and tests only."""
        return cls(hashlib.sha256(b"seqnet/test-key/" + label.encode()).digest())

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    def sign_raw(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)

    def sign(self, statement: S, chain_id: str, signer: int) -> Signed[S]:
        return Signed(statement, signer, self.sign_raw(sign_bytes(statement, chain_id)))

    def sign_own(self, statement: S, chain_id: str, signer: int) -> Verified[S]:
        """Sign and keep as verified: a signature this key just made needs no check."""
        signed = self.sign(statement, chain_id, signer)
        return Verified(statement, signer, signed.signature, _token=_VERIFIED)


_VERIFIED = object()


@dataclass(frozen=True, slots=True)
class Signed(Generic[S]):
    """A statement with its signer's index and signature, not yet checked."""

    statement: S
    signer: Annotated[int, SIGNER_INDEX]
    signature: Signature

    def verify(self, committee: Signers) -> Verified[S]:
        """Check the signature against ``committee``; raise :class:`BadSignature`."""
        message = sign_bytes(self.statement, committee.chain_id)
        if not committee.verify(self.signer, message, self.signature):
            raise BadSignature(
                f"bad signature on {type(self.statement).__name__} from signer {self.signer}"
            )
        return Verified(self.statement, self.signer, self.signature, _token=_VERIFIED)


@dataclass(frozen=True, slots=True)
class Verified(Generic[S]):
    """A statement whose signature was checked by :meth:`Signed.verify`."""

    statement: S
    signer: int
    signature: bytes
    _token: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _VERIFIED:
            raise TypeError("Verified envelopes are only made by Signed.verify()")

    def unchecked(self) -> Signed[S]:
        """The wire form, to forward or embed."""
        return Signed(self.statement, self.signer, self.signature)
