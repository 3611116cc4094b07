"""The node's SQLite store: round trips, refusals, and a real process killed mid-write."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
from dataclasses import replace

import pytest

from ordering.events import Commit
from ordering.messages import block_hash
from ordering.safety import SafetyState
from sequencer_net.node.storage import StorageError, Store
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
