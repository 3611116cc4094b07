"""A validator's durable state: committed blocks, certificates, safety state (SQLite, WAL).

Theory of operation
-------------------
Three kinds of writes, each one SQLite transaction (WAL mode):

- ``save_safety``: the consensus core's ``Persist`` action (and the block voted
  for), with ``synchronous=FULL``: on disk when the call returns, even if the
  machine loses power. The driver must finish it before sending the vote,
  timeout or proposal that follows: this is what prevents a double vote.
- ``append_commit``: one committed block with the QC that certifies it, at the
  next height (anything else is refused: the log has no gaps and never forks),
  and the digests it ordered, indexed: every transaction ever committed here
  is found by digest, which is what refuses a replay after any restart.
- ``save_batch``: a committed block's decrypted transactions at a height already
  committed (decryption finishes after the commit).

The last two use ``synchronous=NORMAL``: in WAL mode a committed transaction
survives the process being killed (it is in the OS's cache of the log), and
only a power loss can take the newest ones back; those are re-fetched from
peers and re-decrypted to the same bytes, so nothing anyone was served is
contradicted. Measured: with every write synchronous, a 4-node cluster on one
disk spent 3-14 ms per commit and 1-10 ms per vote waiting for fsync (most of
a ~20 ms round).

Everything is stored as the canonical CBOR the wire uses, and read back through
the same strict decoder, so a damaged file is an error with a reason, never a
half-read state. A crash at any point leaves either the old or the new state.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

from delivery.header import BatchCertificate, BatchHeader, batch_hash, genesis_batch_hash
from ordering.blocktree import CommittedTip
from ordering.core import Restored
from ordering.events import Commit, CommitWitness
from ordering.messages import Block, QuorumCert, block_hash, genesis_hash
from ordering.safety import SafetyState
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from sequencer_net.base.signing import Signed
from sequencer_net.node.wire import DecryptedBatch

T = TypeVar("T")
SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS safety (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    block BLOB NOT NULL,
    certificate BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS voted (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, block BLOB);
CREATE TABLE IF NOT EXISTS batches (height INTEGER PRIMARY KEY, batch BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    digest BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    position INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_in_order ON txs (height, position);
CREATE TABLE IF NOT EXISTS headers (height INTEGER PRIMARY KEY, header BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batch_certificates (
    height INTEGER PRIMARY KEY,
    header BLOB NOT NULL,
    certificate BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS equivocations (
    height INTEGER NOT NULL,
    signer INTEGER NOT NULL,
    first BLOB NOT NULL,
    second BLOB NOT NULL,
    PRIMARY KEY (height, signer)
);
CREATE TABLE IF NOT EXISTS disputed_certificates (
    height INTEGER NOT NULL,
    hash BLOB NOT NULL,
    certificate BLOB NOT NULL,
    PRIMARY KEY (height, hash)
);
CREATE TABLE IF NOT EXISTS commit_witness (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block BLOB NOT NULL,
    certificate BLOB NOT NULL
);
"""
# Schema 3 gained the last five tables without a new version: ``CREATE TABLE IF NOT
# EXISTS`` adds them to an existing database on open, and an older binary never
# reads them (it serves no batch certificates; this one makes the missing headers).
IN_CHUNK = 500  # digests per ``IN (...)`` query


class StorageError(RuntimeError):
    """The store is for another chain, damaged, or asked to break the log's rules."""


P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Store, P], R]:
    """One call at a time per connection: the node writes from several worker threads."""

    def run(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:  # a damaged file, found mid-run
                raise self.damaged(f"database ({exc})") from None

    run.__doc__ = method.__doc__
    return run


class Store:
    """One node's database connection; calls are serialized, so any thread may use it.

    Open a second ``Store`` on the same file for readers (API, sync serving):
    WAL lets them read while the writer writes.
    """

    def __init__(self, path: pathlib.Path, chain_id: str) -> None:
        self.path, self.chain_id = path, chain_id
        self._lock = threading.RLock()
        self.created = _create_private(path)  # False: the file held a database already
        # told of damage found in any call, from any thread: a node stops on it
        self.on_damage: Callable[[StorageError], None] = lambda error: None
        try:
            # one owner at a time, but the node calls it from worker threads (trio.to_thread)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._sync_mode = "FULL"
            self._db.executescript(SCHEMA)
            self._check_meta()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{path}: not a usable seqnet database ({exc})") from None

    @_locked
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
    def _transaction(self, *, durable: bool = True) -> Iterator[None]:
        mode = "FULL" if durable else "NORMAL"
        if mode != self._sync_mode:
            self._db.execute(f"PRAGMA synchronous={mode}")
            self._sync_mode = mode
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------ safety state

    @_locked
    def save_safety(self, state: SafetyState, blocks: Sequence[tuple[bytes, Block]] = ()) -> None:
        """Durably replace the safety state and keep the blocks voted for (one transaction)."""
        data = codec.encode(state)
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO safety VALUES (1, ?)", (data,))
            self._db.executemany(
                "INSERT OR IGNORE INTO voted VALUES (?, ?, ?)",
                [(digest, b.height, codec.encode(b)) for digest, b in blocks],
            )

    @_locked
    def voted_blocks(self) -> tuple[tuple[bytes, Block], ...]:
        """Blocks voted for above the committed tip, by height (for a restart)."""
        rows = self._db.execute("SELECT hash, height, block FROM voted ORDER BY height").fetchall()
        return tuple(
            (bytes(digest), self._decode(Block, block, f"voted block {height}"))
            for digest, height, block in rows
        )

    @_locked
    def load_safety(self) -> SafetyState | None:
        row = self._db.execute("SELECT state FROM safety WHERE id = 1").fetchone()
        return None if row is None else self._decode(SafetyState, row[0], "safety state")

    # ------------------------------------------------------------ committed log

    @_locked
    def append_commit(self, commit: Commit, ordered: Sequence[bytes] = ()) -> None:
        """Store the next committed block and the digests it ordered; refuse a gap, a fork
        or a block that lies."""
        tip = self.committed_tip()
        block = commit.block
        if block.height != tip.height + 1:
            raise StorageError(f"commit at height {block.height}, expected {tip.height + 1}")
        if block.parent_qc.block_hash != tip.block_hash:
            raise StorageError(f"block at height {block.height} does not extend the committed tip")
        digest = block_hash(block)
        if commit.block_hash != digest or commit.certificate.block_hash != digest:
            raise StorageError(f"block at height {block.height}: hash or certificate mismatch")
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?)",
                (block.height, digest, codec.encode(block), codec.encode(commit.certificate)),
            )
            self._db.execute("DELETE FROM voted WHERE height <= ?", (block.height,))
            self._index(block.height, ordered)

    @_locked
    def save_commit_witness(self, witness: CommitWitness) -> None:
        """Keep the child and QC that made the committed tip final (a cache: not fsynced)."""
        if witness.certificate.block_hash != witness.block_hash:
            raise StorageError("commit witness: the certificate is not the block's")
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT OR REPLACE INTO commit_witness VALUES (1, ?, ?)",
                (codec.encode(witness.block), codec.encode(witness.certificate)),
            )

    @_locked
    def commit_witness(self) -> tuple[Block, QuorumCert] | None:
        """The last :meth:`save_commit_witness`'s block and QC, if any."""
        row = self._db.execute("SELECT block, certificate FROM commit_witness").fetchone()
        if row is None:
            return None
        block: Block = self._decode(Block, row[0], "commit witness block")
        qc: QuorumCert = self._decode(QuorumCert, row[1], "commit witness certificate")
        return block, qc

    def _index(self, height: int, digests: Sequence[bytes]) -> None:
        """Digest -> (height, position); the first commit of a digest is the one kept."""
        self._db.executemany(
            "INSERT OR IGNORE INTO txs VALUES (?, ?, ?)",
            [(digest, height, i) for i, digest in enumerate(digests)],
        )

    @_locked
    def committed_tip(self) -> CommittedTip:
        row = self._db.execute(
            "SELECT height, hash, block FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return CommittedTip(genesis_hash(self.chain_id), 0, 0)
        block: Block = self._decode(Block, row[2], f"block {row[0]}")
        return CommittedTip(bytes(row[1]), block.height, block.round)

    @_locked
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

    # ------------------------------------------------------------ decrypted batches

    @_locked
    def save_batch(self, batch: DecryptedBatch) -> None:
        """Store a committed height's opened transactions (once; a second copy must match)."""
        row = self._db.execute(
            "SELECT hash FROM blocks WHERE height = ?", (batch.height,)
        ).fetchone()
        if row is None or bytes(row[0]) != batch.block_hash:
            raise StorageError(f"batch for height {batch.height} names no committed block")
        data = codec.encode(batch)
        with self._transaction(durable=False):
            held = self._db.execute(
                "SELECT batch FROM batches WHERE height = ?", (batch.height,)
            ).fetchone()
            if held is not None:
                if bytes(held[0]) != data:
                    raise StorageError(f"a different batch is stored at height {batch.height}")
                return
            self._db.execute("INSERT INTO batches VALUES (?, ?)", (batch.height, data))

    @_locked
    def batch(self, height: int) -> DecryptedBatch | None:
        row = self._db.execute("SELECT batch FROM batches WHERE height = ?", (height,)).fetchone()
        return None if row is None else self._decode(DecryptedBatch, row[0], f"batch {height}")

    @_locked
    def batches(self, from_height: int, limit: int) -> list[DecryptedBatch]:
        rows = self._db.execute(
            "SELECT height, batch FROM batches WHERE height >= ? ORDER BY height LIMIT ?",
            (from_height, limit),
        ).fetchall()
        return [self._decode(DecryptedBatch, b, f"batch {h}") for h, b in rows]

    @_locked
    def undecrypted_heights(self, limit: int = 1024) -> list[int]:
        """Committed heights whose batch is not stored yet (after a crash, or a sync)."""
        rows = self._db.execute(
            "SELECT b.height FROM blocks b LEFT JOIN batches d ON d.height = b.height "
            "WHERE d.height IS NULL ORDER BY b.height LIMIT ?",
            (limit,),
        ).fetchall()
        return [h for (h,) in rows]

    @_locked
    def decrypted_tip(self) -> int:
        """The highest height with every batch up to it stored."""
        row = self._db.execute(
            "SELECT MIN(b.height) FROM blocks b LEFT JOIN batches d ON d.height = b.height "
            "WHERE d.height IS NULL"
        ).fetchone()
        if row[0] is not None:
            return int(row[0]) - 1
        return self.committed_tip().height

    # ------------------------------------------------------------ batch headers and certificates

    @_locked
    def save_header(self, header: BatchHeader) -> None:
        """Store the header this node signed for a decrypted height (once; a second must match).

        Headers form a chain like the blocks: the next height only, naming the
        header before it (the genesis batch hash at height 1) and the committed
        block of its height.
        """
        height = header.height
        if header.chain_id != self.chain_id:
            raise StorageError(f"header at height {height} is for chain {header.chain_id!r}")
        data = codec.encode(header)
        held = self._db.execute("SELECT header FROM headers WHERE height = ?", (height,)).fetchone()
        if held is not None:
            if bytes(held[0]) != data:
                raise StorageError(f"a different header is stored at height {height}")
            return
        tip = self._header_tip()
        if height != tip + 1:
            raise StorageError(f"header at height {height}, expected {tip + 1}")
        before = self._header(height - 1)
        parent = genesis_batch_hash(self.chain_id) if before is None else batch_hash(before)
        if header.parent_batch_hash != parent:
            raise StorageError(f"header at height {height} does not name the header before it")
        if self._block_hash_at(height) != header.block_hash:
            raise StorageError(f"header at height {height} names no committed block")
        with self._transaction(durable=False):
            self._db.execute("INSERT INTO headers VALUES (?, ?)", (height, data))

    @_locked
    def header(self, height: int) -> BatchHeader | None:
        """The header this node signed for ``height``."""
        return self._header(height)

    def _header(self, height: int) -> BatchHeader | None:
        row = self._db.execute("SELECT header FROM headers WHERE height = ?", (height,)).fetchone()
        return None if row is None else self._decode(BatchHeader, row[0], f"header {height}")

    @_locked
    def header_tip(self) -> int:
        """The highest height this node signed a header for (every lower one has one too)."""
        return self._header_tip()

    def _header_tip(self) -> int:
        row = self._db.execute("SELECT MAX(height) FROM headers").fetchone()
        return 0 if row[0] is None else int(row[0])

    def _block_hash_at(self, height: int) -> bytes | None:
        row = self._db.execute("SELECT hash FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0])

    @_locked
    def save_batch_certificate(self, cert: BatchCertificate) -> None:
        """Store a verified batch certificate (the caller checked its signatures).

        Refused unless it names the committed block of its height and, where this
        node signed a header there, that very header. A second certificate of the
        same header is not stored (the first one stands); of another header it is
        refused.
        """
        header = cert.header
        height = header.height
        if header.chain_id != self.chain_id or self._block_hash_at(height) != header.block_hash:
            raise StorageError(f"batch certificate for height {height} names no committed block")
        data = codec.encode(header)
        own = self._db.execute("SELECT header FROM headers WHERE height = ?", (height,)).fetchone()
        if own is not None and bytes(own[0]) != data:
            raise StorageError(f"batch certificate for height {height} differs from our header")
        held = self._db.execute(
            "SELECT header FROM batch_certificates WHERE height = ?", (height,)
        ).fetchone()
        if held is not None:
            if bytes(held[0]) != data:
                raise StorageError(f"a different batch certificate is stored at height {height}")
            return
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT INTO batch_certificates VALUES (?, ?, ?)",
                (height, data, codec.encode(cert)),
            )

    @_locked
    def batch_certificate(self, height: int) -> BatchCertificate | None:
        """The certificate of ``height``, once it certifies the header this node signed there."""
        found = self.batch_certificates(height, 1)
        return found[0] if found and found[0].header.height == height else None

    @_locked
    def batch_certificates(self, from_height: int, limit: int) -> list[BatchCertificate]:
        """Certificates of the headers this node signed, from ``from_height`` up (for sync)."""
        rows = self._db.execute(
            "SELECT c.height, c.certificate FROM batch_certificates c "
            "JOIN headers h ON h.height = c.height AND h.header = c.header "
            "WHERE c.height >= ? ORDER BY c.height LIMIT ?",
            (from_height, limit),
        ).fetchall()
        return [self._decode(BatchCertificate, c, f"batch certificate {h}") for h, c in rows]

    @_locked
    def certificate_on_file(self, height: int) -> BatchCertificate | None:
        """Any certificate stored for ``height``, also one a peer synced before this node
        signed its own header (then it is still to be compared with that header)."""
        row = self._db.execute(
            "SELECT certificate FROM batch_certificates WHERE height = ?", (height,)
        ).fetchone()
        if row is None:
            return None
        return self._decode(BatchCertificate, row[0], f"batch certificate {height}")

    @_locked
    def certified_height(self, above: int = 0) -> int:
        """The highest height with every height up to it certified (as this node signed it).

        ``above``: a height known to be certified already, to search from there.
        """
        row = self._db.execute(
            "SELECT MIN(h.height) FROM headers h LEFT JOIN batch_certificates c "
            "ON c.height = h.height AND c.header = h.header "
            "WHERE h.height > ? AND c.height IS NULL",
            (above,),
        ).fetchone()
        return self._header_tip() if row[0] is None else int(row[0]) - 1

    @_locked
    def uncertified_heights(self, above: int, limit: int) -> list[int]:
        """Heights above ``above`` with a header signed here and no certificate of it yet."""
        rows = self._db.execute(
            "SELECT h.height FROM headers h LEFT JOIN batch_certificates c "
            "ON c.height = h.height AND c.header = h.header "
            "WHERE h.height > ? AND c.height IS NULL ORDER BY h.height LIMIT ?",
            (above, limit),
        ).fetchall()
        return [h for (h,) in rows]

    @_locked
    def save_equivocation(self, first: Signed[BatchHeader], second: Signed[BatchHeader]) -> None:
        """Keep a validator's two different signed headers for one height (evidence)."""
        height, signer = first.statement.height, first.signer
        if second.statement.height != height or second.signer != signer:
            raise StorageError("an equivocation is two headers of one signer and height")
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT OR IGNORE INTO equivocations VALUES (?, ?, ?, ?)",
                (height, signer, _signed_header(first), _signed_header(second)),
            )

    @_locked
    def equivocations(self) -> list[tuple[Signed[BatchHeader], Signed[BatchHeader]]]:
        """Every equivocation kept, by height and signer."""
        rows = self._db.execute(
            "SELECT height, first, second FROM equivocations ORDER BY height, signer"
        ).fetchall()
        kind = Signed[BatchHeader]
        return [
            (self._decode(kind, a, f"equivocation {h}"), self._decode(kind, b, f"equivocation {h}"))
            for h, a, b in rows
        ]

    @_locked
    def save_disputed_certificate(self, cert: BatchCertificate) -> None:
        """Keep a valid certificate of a header this node did not sign (evidence), and
        make sure it is not held as the height's certificate."""
        height, data = cert.header.height, codec.encode(cert.header)
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT OR IGNORE INTO disputed_certificates VALUES (?, ?, ?)",
                (height, batch_hash(cert.header), codec.encode(cert)),
            )
            self._db.execute(
                "DELETE FROM batch_certificates WHERE height = ? AND header = ?", (height, data)
            )

    @_locked
    def disputed_certificates(self) -> list[BatchCertificate]:
        rows = self._db.execute(
            "SELECT height, certificate FROM disputed_certificates ORDER BY height"
        ).fetchall()
        return [self._decode(BatchCertificate, c, f"disputed certificate {h}") for h, c in rows]

    @_locked
    def recent_digests(self, limit: int) -> list[bytes]:
        """The digests of the last ``limit`` committed transactions, oldest first."""
        rows = self._db.execute(
            "SELECT digest FROM txs ORDER BY height DESC, position DESC LIMIT ?", (limit,)
        ).fetchall()
        return [bytes(d) for (d,) in reversed(rows)]

    @_locked
    def committed_among(self, digests: Sequence[bytes]) -> set[bytes]:
        """Which of ``digests`` were committed here, at any height."""
        found: set[bytes] = set()
        for start in range(0, len(digests), IN_CHUNK):
            chunk = list(digests[start : start + IN_CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT digest FROM txs WHERE digest IN ({marks})", chunk)
            found.update(bytes(d) for (d,) in rows)
        return found

    @_locked
    def locate(self, digest: bytes) -> tuple[int, int] | None:
        """(height, position) of a committed transaction (decrypted or not yet)."""
        row = self._db.execute(
            "SELECT height, position FROM txs WHERE digest = ?", (digest,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def last_commits(self, count: int) -> list[Commit]:
        """The last ``count`` commits, oldest first (replayed into a restarted app)."""
        return self.commits(max(1, self.committed_tip().height - count + 1), count)

    @_locked
    def block(self, digest: bytes) -> Block | None:
        """A committed block by hash (serving peers' block requests)."""
        row = self._db.execute(
            "SELECT height, block FROM blocks WHERE hash = ?", (digest,)
        ).fetchone()
        return None if row is None else self._decode(Block, row[1], f"block {row[0]}")

    @_locked
    def restored(self) -> Restored | None:
        """What the consensus core restarts from, or None for a fresh node."""
        return Restored.from_disk(
            self.chain_id, self.load_safety(), self.committed_tip(), self.voted_blocks()
        )

    def _decode(self, cls: type[T], data: bytes, what: str) -> T:
        try:
            return codec.decode(cls, bytes(data))
        except DecodeError as exc:
            raise self.damaged(f"{what}: {exc}") from None

    def damaged(self, what: str) -> StorageError:
        """The error for damage found in this file (``on_damage`` is told first)."""
        error = StorageError(f"{self.path}: damaged {what}")
        self.on_damage(error)
        return error


def _signed_header(signed: Signed[BatchHeader]) -> bytes:
    return codec.encode(signed, Signed[BatchHeader])


def _create_private(path: pathlib.Path) -> bool:
    """Make ``path`` an empty file readable by its owner only, if it is missing or empty.

    True when there was no database before (SQLite creates its -wal and -shm
    files with the database file's mode, so they are private too).
    """
    if path.exists() and path.stat().st_size > 0:
        return False
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)  # an empty file left by someone else may have any mode
    return True
