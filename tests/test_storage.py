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
from sequencer_net.storage import StorageError, Store
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
from sequencer_net.storage import Store
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
