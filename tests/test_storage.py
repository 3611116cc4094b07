"""The node's SQLite store: round trips, refusals, and a real process killed mid-write."""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest

from delivery.header import BatchCertificate, BatchHeader, batch_hash, genesis_batch_hash
from ordering.events import Commit, CommitWitness
from ordering.messages import block_hash
from ordering.safety import SafetyState
from sequencer_net.base.signing import sign_bytes
from sequencer_net.node.batches import header_of
from sequencer_net.node.storage import SCHEMA, SCHEMA_VERSION, StorageError, Store
from sequencer_net.node.wire import DecryptedBatch, DecryptedTx
from tests.factory import Net

NET = Net(4)
ROOT = pathlib.Path(__file__).parent.parent


def chain(length: int) -> list[Commit]:
    """Committed blocks 1..length, each certified by a real quorum certificate."""
    out, parent = [], NET.genesis_qc
    for r in range(1, length + 1):
        block = NET.block(r, parent, b"payload-%d" % r)
        qc = NET.qc(block)
        out.append(Commit(block, block_hash(block), qc))
        parent = qc
    return out


def test_fresh_store_restores_nothing(tmp_path: pathlib.Path) -> None:
    store = Store(tmp_path / "node.db", NET.chain_id)
    assert store.restored() is None and store.committed_tip().height == 0


def test_safety_and_commits_round_trip(tmp_path: pathlib.Path) -> None:
    store = Store(tmp_path / "node.db", NET.chain_id)
    commits = chain(3)
    for c in commits:
        store.append_commit(c)
    state = SafetyState(7, commits[-1].certificate)
    store.save_safety(state)
    store.close()
    again = Store(tmp_path / "node.db", NET.chain_id)
    assert again.load_safety() == state
    assert again.commits(1, 10) == commits and again.commits(3, 10) == commits[2:]
    restored = again.restored()
    assert restored is not None and restored.tip.height == 3 and restored.safety == state


def test_the_newest_commit_witness_is_kept_and_a_mismatched_one_refused(
    tmp_path: pathlib.Path,
) -> None:
    store = Store(tmp_path / "node.db", NET.chain_id)
    assert store.commit_witness() is None
    first, second = chain(2)
    for c in (first, second):
        store.save_commit_witness(CommitWitness(c.block, c.block_hash, c.certificate))
    with pytest.raises(StorageError, match="not the block's"):
        store.save_commit_witness(CommitWitness(first.block, first.block_hash, second.certificate))
    store.close()
    again = Store(tmp_path / "node.db", NET.chain_id)
    assert again.commit_witness() == (second.block, second.certificate)


def test_gaps_forks_and_lies_are_refused(tmp_path: pathlib.Path) -> None:
    store = Store(tmp_path / "node.db", NET.chain_id)
    commits = chain(3)
    with pytest.raises(StorageError, match="expected 1"):
        store.append_commit(commits[1])
    store.append_commit(commits[0])
    fork = NET.block(2, NET.genesis_qc, b"fork")
    with pytest.raises(StorageError, match="does not extend"):
        store.append_commit(Commit(replace(fork, height=2), block_hash(fork), NET.qc(fork)))
    with pytest.raises(StorageError, match="mismatch"):
        store.append_commit(replace(commits[1], certificate=commits[0].certificate))
    assert store.committed_tip().height == 1


def test_another_chains_or_a_damaged_database_is_refused(tmp_path: pathlib.Path) -> None:
    Store(tmp_path / "node.db", NET.chain_id).close()
    with pytest.raises(StorageError, match="belongs to chain"):
        Store(tmp_path / "node.db", "other-chain")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(StorageError, match="not a usable"):
        Store(garbage, NET.chain_id)


WRITER = """
import sys
from ordering.safety import SafetyState
from sequencer_net.node.storage import Store
from tests.test_storage import NET, chain
store = Store(__import__("pathlib").Path(sys.argv[1]), NET.chain_id)
for commit in chain(40):
    store.save_safety(SafetyState(commit.block.round, commit.certificate))
    print("safety", commit.block.round, flush=True)
    store.append_commit(commit)
    print("commit", commit.block.height, flush=True)
"""


@pytest.mark.parametrize("kill_after", [3, 17, 40])
def test_kill_9_loses_nothing_acknowledged(tmp_path: pathlib.Path, kill_after: int) -> None:
    path = tmp_path / "node.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = {"safety": 0, "commit": 0}
    for _ in range(kill_after):
        kind, value = proc.stdout.readline().split()
        acknowledged[kind] = int(value)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(path, NET.chain_id)
    tip = store.committed_tip()
    assert tip.height >= acknowledged["commit"]
    assert [c.block.height for c in store.commits(1, 100)] == list(range(1, tip.height + 1))
    safety = store.load_safety()
    assert safety is not None and safety.highest_voted_round >= acknowledged["safety"]


def test_every_committed_digest_is_indexed_at_commit_for_replay_checks(
    tmp_path: pathlib.Path,
) -> None:
    store = Store(tmp_path / "node.db", NET.chain_id)
    digests = [bytes([h, k]) * 16 for h in range(1, 4) for k in range(3)]
    for k, commit in enumerate(chain(3)):
        store.append_commit(commit, digests[3 * k : 3 * k + 3])
    assert store.recent_digests(4) == digests[-4:]  # the last four, oldest first
    assert store.recent_digests(100) == digests
    unknown = bytes(32)
    assert store.committed_among([digests[0], unknown, digests[8]]) == {digests[0], digests[8]}
    assert store.locate(digests[4]) == (2, 1)
    many = [os.urandom(32) for _ in range(1200)] + [digests[5]]  # more than one IN (...) query
    assert store.committed_among(many) == {digests[5]}


def test_a_missing_or_truncated_database_is_reported_as_created(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "node.db"
    store = Store(path, NET.chain_id)
    assert store.created and store.restored() is None
    store.append_commit(chain(1)[0])
    store.close()
    again = Store(path, NET.chain_id)
    assert not again.created and again.restored() is not None
    again.close()
    path.write_bytes(b"")  # an operator's accident: truncated to 0 bytes
    for suffix in ("-wal", "-shm"):
        pathlib.Path(str(path) + suffix).unlink(missing_ok=True)
    assert Store(path, NET.chain_id).created


def test_a_database_damaged_mid_file_is_a_storage_error_not_a_crash(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "node.db"
    store = Store(path, NET.chain_id)
    for commit in chain(60):
        store.append_commit(commit)
    store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page : 6 * page] = os.urandom(3 * page)  # pages in the middle, header intact
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="damaged"):
        damaged = Store(path, NET.chain_id)
        damaged.commits(1, 100)
        damaged.batches(1, 100)


def test_database_files_are_private_whatever_the_umask(tmp_path: pathlib.Path) -> None:
    old = os.umask(0)
    try:
        store = Store(tmp_path / "node.db", NET.chain_id)
        store.append_commit(chain(1)[0])
        for name in ("node.db", "node.db-wal"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    finally:
        os.umask(old)


# ---------------------------------------------------------------- batch headers and certificates


def _batch(commit: Commit) -> DecryptedBatch:
    height = commit.block.height
    tx = DecryptedTx("rollup-a", bytes([height]) * 32, b"tx-%d" % height)
    return DecryptedBatch(height, commit.block_hash, (tx,), (b"\x01" * 32,))


def _headers(commits: list[Commit]) -> list[BatchHeader]:
    out, parent = [], genesis_batch_hash(NET.chain_id)
    for commit in commits:
        out.append(header_of(NET.chain_id, _batch(commit), parent))
        parent = batch_hash(out[-1])
    return out


def _cert(header: BatchHeader, signers: tuple[int, ...] = (0, 1, 2)) -> BatchCertificate:
    message = sign_bytes(header, NET.chain_id)
    return BatchCertificate(header, tuple((s, NET.keys[s].sign_raw(message)) for s in signers))


def test_headers_form_a_chain_and_certificates_count_once_they_match_ours(
    tmp_path: pathlib.Path,
) -> None:
    store = Store(tmp_path / "node.db", NET.chain_id)
    commits = chain(4)
    for c in commits:
        store.append_commit(c)
    h1, h2, h3, h4 = _headers(commits)
    with pytest.raises(StorageError, match="expected 1"):
        store.save_header(h2)
    with pytest.raises(StorageError, match="does not name"):
        store.save_header(replace(h1, parent_batch_hash=bytes(32)))
    with pytest.raises(StorageError, match="names no committed block"):
        store.save_header(replace(h1, block_hash=bytes(32)))
    store.save_header(h1)
    store.save_header(h1)  # the same again: nothing happens
    with pytest.raises(StorageError, match="a different header"):
        store.save_header(replace(h1, leaf_count=2))
    store.save_header(h2)
    assert store.header(2) == h2 and store.header(3) is None and store.header_tip() == 2

    with pytest.raises(StorageError, match="differs from our header"):
        store.save_batch_certificate(_cert(replace(h1, leaf_count=2)))
    with pytest.raises(StorageError, match="names no committed block"):
        store.save_batch_certificate(_cert(replace(h1, block_hash=bytes(32))))
    store.save_batch_certificate(_cert(h2))
    assert store.certified_height() == 0 and store.uncertified_heights(0, 10) == [1]
    store.save_batch_certificate(_cert(h1))
    store.save_batch_certificate(
        _cert(h1, (1, 2, 3))
    )  # another of the same header: the first stays
    assert store.batch_certificate(1) == _cert(h1)
    assert store.certified_height() == 2 and store.uncertified_heights(0, 10) == []

    synced = _cert(h4)  # a peer's, before this node opened height 4: held, not counted
    store.save_batch_certificate(synced)
    assert store.certificate_on_file(4) == synced and store.batch_certificate(4) is None
    store.save_header(h3)
    assert store.certified_height() == 2 and store.uncertified_heights(2, 10) == [3]
    store.save_batch_certificate(_cert(h3))
    assert store.certified_height(above=2) == 3
    assert store.batch_certificates(1, 10) == [_cert(h1), _cert(h2), _cert(h3)]
    wrong = replace(h4, namespace_root=b"\x09" * 32, parent_batch_hash=batch_hash(h3))
    store.save_header(wrong)  # this node opened it to something else
    assert store.batch_certificate(4) is None and store.certified_height() == 3
    store.save_disputed_certificate(synced)
    assert store.disputed_certificates() == [synced] and store.certificate_on_file(4) is None


def test_equivocations_are_kept_as_signed(tmp_path: pathlib.Path) -> None:
    store = Store(tmp_path / "node.db", NET.chain_id)
    commit = chain(1)[0]
    store.append_commit(commit)
    (header,) = _headers([commit])
    first = NET.keys[2].sign(header, NET.chain_id, 2)
    second = NET.keys[2].sign(replace(header, leaf_count=5), NET.chain_id, 2)
    store.save_equivocation(first, second)
    store.save_equivocation(first, second)  # once per height and signer
    with pytest.raises(StorageError, match="one signer"):
        store.save_equivocation(first, NET.keys[1].sign(header, NET.chain_id, 1))
    store.close()
    assert Store(tmp_path / "node.db", NET.chain_id).equivocations() == [(first, second)]


def test_a_database_from_before_batch_certificates_gains_their_tables(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "node.db"
    old_schema = SCHEMA.split("CREATE TABLE IF NOT EXISTS headers")[0]
    db = sqlite3.connect(path)
    db.executescript(old_schema)
    db.execute("INSERT INTO meta VALUES ('chain_id', ?)", (NET.chain_id,))
    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    db.commit()
    assert "headers" not in {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    store = Store(path, NET.chain_id)
    commit = chain(1)[0]
    store.append_commit(commit)
    store.save_batch(_batch(commit))
    assert store.header_tip() == 0 and store.certified_height() == 0
    (header,) = _headers([commit])
    store.save_header(header)
    store.save_batch_certificate(_cert(header))
    assert store.certified_height() == 1 and store.equivocations() == []


def test_a_damaged_header_or_certificate_is_a_storage_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "node.db"
    store = Store(path, NET.chain_id)
    commit = chain(1)[0]
    store.append_commit(commit)
    (header,) = _headers([commit])
    store.save_header(header)
    store.save_batch_certificate(_cert(header))
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE headers SET header = ?", (b"\xa1\x01",))
    db.execute("UPDATE batch_certificates SET certificate = ?", (b"junk",))
    db.commit()
    db.close()
    damaged = Store(path, NET.chain_id)
    seen: list[StorageError] = []
    damaged.on_damage = seen.append
    with pytest.raises(StorageError, match="damaged header 1"):
        damaged.header(1)
    with pytest.raises(StorageError, match="damaged batch certificate 1"):
        damaged.certificate_on_file(1)
    assert len(seen) == 2
