"""The validator committee: who may sign, and how many signatures make a quorum.

Why here: every package needs the same arithmetic (n = 3f+1 tolerates f faults,
2f+1 signatures form a quorum, f+1 include at least one honest node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sequencer_net.base.signing import verify_signature


def max_faulty(n: int) -> int:
    """f: the most Byzantine validators n tolerates (the largest f with n >= 3f+1)."""
    return (n - 1) // 3


def decryption_threshold(n: int) -> int:
    """t = f + 1 shares: the f faulty validators alone can never decrypt, f + 1 honest ones can."""
    return max_faulty(n) + 1


@dataclass(frozen=True, slots=True)
class Committee:
    """A chain id and the ordered list of validator public keys (index = position)."""

    chain_id: str
    public_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.public_keys) < 1:
            raise ValueError("a committee needs at least one validator")
        if any(len(k) != 32 for k in self.public_keys):
            raise ValueError("validator public keys are 32-byte ed25519 keys")

    @classmethod
    def of(cls, chain_id: str, public_keys: Sequence[bytes]) -> Committee:
        return cls(chain_id, tuple(public_keys))

    @property
    def n(self) -> int:
        return len(self.public_keys)

    @property
    def f(self) -> int:
        """Byzantine faults tolerated: the largest f with n >= 3f+1."""
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        """Signatures in a certificate: any two quorums share an honest node.

        ``(n + f) // 2 + 1`` is 2f+1 when n = 3f+1 and stays safe for other n.
        """
        return (self.n + self.f) // 2 + 1

    @property
    def validity(self) -> int:
        """f+1: enough signers that at least one of them is honest."""
        return self.f + 1

    def is_member(self, index: int) -> bool:
        return 0 <= index < self.n

    def verify(self, signer: int, message: bytes, signature: bytes) -> bool:
        if not self.is_member(signer):
            return False
        return verify_signature(self.public_keys[signer], message, signature)
