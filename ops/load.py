"""A load client: encrypt transactions, submit them in batches, watch them come out decrypted.

Used by the end-to-end tests and ``ops/bench``; it talks to nodes only through
their HTTP API, like any rollup client.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import cbor2

from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import ClientError, get_json, post
from sequencer_net.node.genesis import Genesis


@dataclass(frozen=True, slots=True)
class Tx:
    data: bytes  # the encoded ciphertext, as submitted
    digest: bytes
    namespace: str
    payload: bytes


def make_txs(genesis: Genesis, count: int, namespaces: Iterable[str], tag: str = "tx") -> list[Tx]:
    """``count`` transactions spread over ``namespaces``, each payload unique."""
    spaces = list(namespaces)
    out = []
    for k in range(count):
        ns, payload = spaces[k % len(spaces)], f"{tag}-{k}".encode()
        sealed = seal(genesis, ns, payload)
        out.append(Tx(sealed.data, sealed.digest, ns, payload))
    return out


def submit_batch(address: str, txs: list[Tx]) -> list[str]:
    """Submit in one request; the node's verdict per transaction ("pending" = accepted)."""
    body = cbor2.dumps([tx.data for tx in txs])
    answer = post(address, "/v1/transactions/batch", body)
    return [r["status"] for r in answer["results"]]


@dataclass
class Watcher:
    """Follows one node's decrypted batches from a height, noting when each digest appears."""

    address: str
    next_height: int = 1
    seen: dict[bytes, tuple[float, int, bytes | None]] = field(default_factory=dict)
    log: list[tuple[int, str, tuple[tuple[str, str, str | None], ...]]] = field(
        default_factory=list
    )

    def poll(self) -> int:
        """Read every newly decrypted batch; how many were read."""
        read = 0
        while True:
            try:
                batch = get_json(self.address, f"/v1/batches/{self.next_height}")
            except ClientError:
                return read  # not decrypted yet (404) or the node is down
            now = time.monotonic()
            txs = tuple(
                (t["namespace"], t["digest"], t["plaintext"]) for t in batch["transactions"]
            )
            self.log.append((batch["height"], batch["block_hash"], txs))
            for _, digest, plaintext in txs:
                raw = None if plaintext is None else bytes.fromhex(plaintext)
                self.seen.setdefault(bytes.fromhex(digest), (now, batch["height"], raw))
            self.next_height += 1
            read += 1
