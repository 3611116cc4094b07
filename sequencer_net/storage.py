"""A validator's durable state: committed blocks, certificates, safety state (SQLite, WAL).

Theory of operation
-------------------
Two kinds of writes, each one SQLite transaction with ``synchronous=FULL`` so
it is on disk when the call returns:

- ``save_safety``: the consensus core's ``Persist`` action. The driver must
  finish it before sending the vote, timeout or proposal that follows.
- ``append_commit``: one committed block with the QC that certifies it, at the
  next height (anything else is refused: the log has no gaps and never forks).

Everything is stored as the canonical CBOR the wire uses, and read back through
the same strict decoder, so a damaged file is an error with a reason, never a
half-read state. A crash at any point leaves either the old or the new state.
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from ordering.blocktree import CommittedTip
from ordering.core import Restored
from ordering.events import Commit
from ordering.messages import Block, QuorumCert, block_hash, genesis_hash
from ordering.safety import SafetyState
from sequencer_net import codec
from sequencer_net.codec import DecodeError

T = TypeVar("T")
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS safety (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    block BLOB NOT NULL,
    certificate BLOB NOT NULL
);
"""


class StorageError(RuntimeError):
    """The store is for another chain, damaged, or asked to break the log's rules."""


class Store:
    """One node's database. Not thread-safe: one owner (the node's storage task)."""

    def __init__(self, path: pathlib.Path, chain_id: str) -> None:
        self.path, self.chain_id = path, chain_id
        try:
            # one owner at a time, but the node calls it from worker threads (trio.to_thread)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._check_meta()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{path}: not a usable seqnet database ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def _check_meta(self) -> None:
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            with self._transaction():
                self._db.execute("INSERT INTO meta VALUES ('chain_id', ?)", (self.chain_id,))
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            return
        if rows.get("chain_id") != self.chain_id:
            raise StorageError(f"{self.path}: belongs to chain {rows.get('chain_id')!r}")
        if rows.get("schema") != str(SCHEMA_VERSION):
            raise StorageError(
                f"{self.path}: schema {rows.get('schema')}, expected {SCHEMA_VERSION}"
            )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------ safety state

    def save_safety(self, state: SafetyState) -> None:
        """Durably replace the safety state (returns once it is on disk)."""
        data = codec.encode(state)
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO safety VALUES (1, ?)", (data,))

    def load_safety(self) -> SafetyState | None:
        row = self._db.execute("SELECT state FROM safety WHERE id = 1").fetchone()
        return None if row is None else self._decode(SafetyState, row[0], "safety state")

    # ------------------------------------------------------------ committed log

    def append_commit(self, commit: Commit) -> None:
        """Store the next committed block; refuse a gap, a fork or a block that lies."""
        tip = self.committed_tip()
        block = commit.block
        if block.height != tip.height + 1:
            raise StorageError(f"commit at height {block.height}, expected {tip.height + 1}")
        if block.parent_qc.block_hash != tip.block_hash:
            raise StorageError(f"block at height {block.height} does not extend the committed tip")
        digest = block_hash(block)
        if commit.block_hash != digest or commit.certificate.block_hash != digest:
            raise StorageError(f"block at height {block.height}: hash or certificate mismatch")
        with self._transaction():
            self._db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?)",
                (block.height, digest, codec.encode(block), codec.encode(commit.certificate)),
            )

    def committed_tip(self) -> CommittedTip:
        row = self._db.execute(
            "SELECT height, hash, block FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return CommittedTip(genesis_hash(self.chain_id), 0, 0)
        block: Block = self._decode(Block, row[2], f"block {row[0]}")
        return CommittedTip(bytes(row[1]), block.height, block.round)

    def commits(self, from_height: int, limit: int) -> list[Commit]:
        """Committed blocks from ``from_height`` up, at most ``limit`` (for sync and replay)."""
        rows = self._db.execute(
            "SELECT height, hash, block, certificate FROM blocks WHERE height >= ? "
            "ORDER BY height LIMIT ?",
            (from_height, limit),
        ).fetchall()
        out = []
        for height, digest, block, certificate in rows:
            b: Block = self._decode(Block, block, f"block {height}")
            qc: QuorumCert = self._decode(QuorumCert, certificate, f"certificate {height}")
            out.append(Commit(b, bytes(digest), qc))
        return out

    def restored(self) -> Restored | None:
        """What the consensus core restarts from, or None for a fresh node."""
        return Restored.from_disk(self.chain_id, self.load_safety(), self.committed_tip())

    def _decode(self, cls: type[T], data: bytes, what: str) -> T:
        try:
            return codec.decode(cls, bytes(data))
        except DecodeError as exc:
            raise StorageError(f"{self.path}: damaged {what}: {exc}") from None
