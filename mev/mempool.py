"""The encrypted mempool: well-formed ciphertexts waiting to be ordered.

Admission is strict and cheap checks come first: size, strict decoding,
registered namespace, duplicate (also of recently committed digests, so a
replayed transaction is not ordered twice), and only then the ciphertext's
signature, for this chain and this threshold key.
Limits hold per namespace and in total; under pressure the oldest entries go
first. The pool hands the proposer the oldest entries and never decrypts
anything: decryption shares come only from ``mev.decryptor`` for committed
batches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from mev import kem
from mev.kem import Ciphertext, InvalidCiphertext
from mev.keys import ThresholdPublicKey
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError

WIRE_OVERHEAD = 256  # namespace, u, key check, signature and framing around the sealed payload


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    max_tx_bytes: int = kem.MAX_PAYLOAD_BYTES + kem.TAG_BYTES + WIRE_OVERHEAD
    max_namespace_bytes: int = 16 * 1024 * 1024
    max_total_bytes: int = 64 * 1024 * 1024
    max_total_count: int = 100_000
    # recent commits refused without asking the store (which refuses older replays):
    # ~40 s at 1,300 tx/s; each digest kept costs ~150 bytes
    remembered_commits: int = 50_000


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on one submission; ``reason`` is a stable metric label."""

    accepted: bool
    reason: str
    digest: bytes = b""


@dataclass(frozen=True, slots=True)
class Entry:
    digest: bytes
    ciphertext: Ciphertext
    data: bytes  # its canonical encoding, as received: what a block carries

    @property
    def size(self) -> int:
        return len(self.data)


def check_ciphertext(public: ThresholdPublicKey, chain_id: str, ct: Ciphertext) -> Admission | None:
    """None when the ciphertext's signature holds, else the refusal (thread-safe, pure)."""
    try:
        kem.check(public, chain_id, ct)
    except InvalidCiphertext as exc:
        return Admission(False, exc.reason, kem.digest(ct))
    return None


class EncryptedMempool:
    def __init__(
        self,
        threshold_key: ThresholdPublicKey,
        chain_id: str,
        namespaces: Iterable[str],
        limits: MempoolLimits | None = None,
    ) -> None:
        self.threshold_key, self.chain_id = threshold_key, chain_id
        self.namespaces = frozenset(namespaces)
        self.limits = limits or MempoolLimits()
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()  # oldest first
        self._by_namespace: dict[str, OrderedDict[bytes, Entry]] = {
            ns: OrderedDict() for ns in sorted(self.namespaces)
        }
        self._namespace_bytes = dict.fromkeys(self.namespaces, 0)
        self._bytes = 0
        self._committed: OrderedDict[bytes, None] = OrderedDict()
        self.evicted = 0

    # ------------------------------------------------------------ admission

    def add(self, data: bytes) -> Admission:
        """Admit one encoded ciphertext, or say why not."""
        screened = self.screen(data)
        if isinstance(screened, Admission):
            return screened
        checked = check_ciphertext(self.threshold_key, self.chain_id, screened)
        return checked if checked is not None else self.insert_checked(screened, data)

    def add_ciphertext(self, ct: Ciphertext) -> Admission:
        return self.add(codec.encode(ct))

    def screen(self, data: bytes) -> Ciphertext | Admission:
        """The cheap checks (size, decoding, namespace, duplicate): a ciphertext or a refusal.

        The expensive signature check is separate so a driver can run it off its
        event loop (``check_ciphertext``) and then call ``insert_checked``.
        """
        if len(data) > self.limits.max_tx_bytes:
            return Admission(False, "oversized")
        try:
            ct: Ciphertext = codec.decode(Ciphertext, data, max_bytes=self.limits.max_tx_bytes)
        except DecodeError:
            return Admission(False, "malformed")
        return self._refusal(ct, kem.digest_of_encoding(data)) or ct

    def insert_checked(self, ct: Ciphertext, data: bytes, digest: bytes = b"") -> Admission:
        """Admit a ciphertext (``data``: its encoding) that ``check_ciphertext`` accepted."""
        digest = digest or kem.digest_of_encoding(data)
        refused = self._refusal(ct, digest)
        if refused is not None:
            return refused
        self._insert(Entry(digest, ct, data))
        return Admission(True, "accepted", digest)

    def _refusal(self, ct: Ciphertext, digest: bytes) -> Admission | None:
        if ct.namespace not in self.namespaces:
            return Admission(False, "unknown-namespace")
        if digest in self._entries or digest in self._committed:
            return Admission(False, "duplicate", digest)
        return None

    def _insert(self, entry: Entry) -> None:
        ns = entry.ciphertext.namespace
        while self._namespace_bytes[ns] + entry.size > self.limits.max_namespace_bytes:
            self._evict(next(iter(self._by_namespace[ns].values())))
        while (
            self._bytes + entry.size > self.limits.max_total_bytes
            or len(self._entries) + 1 > self.limits.max_total_count
        ):
            self._evict(next(iter(self._entries.values())))
        self._entries[entry.digest] = entry
        self._by_namespace[ns][entry.digest] = entry
        self._namespace_bytes[ns] += entry.size
        self._bytes += entry.size

    def _evict(self, entry: Entry) -> None:
        self._remove(entry.digest)
        self.evicted += 1

    def _remove(self, digest: bytes) -> Entry | None:
        entry = self._entries.pop(digest, None)
        if entry is None:
            return None
        ns = entry.ciphertext.namespace
        del self._by_namespace[ns][digest]
        self._namespace_bytes[ns] -= entry.size
        self._bytes -= entry.size
        return entry

    # ------------------------------------------------------------ proposer and commit

    def take(self, max_count: int, max_bytes: int) -> list[Entry]:
        """The oldest entries that fit, for the next proposal (they stay until committed)."""
        out: list[Entry] = []
        size = 0
        for entry in self._entries.values():
            if len(out) == max_count or size + entry.size > max_bytes:
                break
            out.append(entry)
            size += entry.size
        return out

    def mark_committed(self, digests: Iterable[bytes]) -> dict[bytes, Ciphertext]:
        """Drop committed ciphertexts and remember them so a replay is a duplicate.

        Returns the dropped ones, decoded: decryption needs them next, and
        decoding a block's bodies again costs ~7 us per transaction.
        """
        dropped: dict[bytes, Ciphertext] = {}
        for digest in digests:
            entry = self._remove(digest)
            if entry is not None:
                dropped[digest] = entry.ciphertext
            self._committed[digest] = None
            self._committed.move_to_end(digest)
        while len(self._committed) > self.limits.remembered_commits:
            self._committed.popitem(last=False)
        return dropped

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._entries

    def digests(self) -> list[bytes]:
        """Everything waiting, oldest first."""
        return list(self._entries)

    def get(self, digest: bytes) -> Entry | None:
        return self._entries.get(digest)

    def is_known(self, digest: bytes) -> bool:
        """Waiting here, or committed recently (a replay)."""
        return digest in self._entries or digest in self._committed

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def namespace_sizes(self) -> dict[str, int]:
        return {ns: len(entries) for ns, entries in self._by_namespace.items()}
