"""Real validator processes on 127.0.0.1: commit together, survive kill -9, stop on SIGTERM."""

from __future__ import annotations

import pathlib
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from sequencer_net.storage import Store

N = 4


def free_base_port() -> int:
    """A base port with N free consecutive ports after it."""
    for _ in range(50):
        base = random.randrange(20_000, 40_000)
        try:
            for p in range(base, base + N):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def seqnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "sequencer_net.cli", *args]


def tip(path: pathlib.Path) -> int:
    store = Store(path, "seqnet-local")
    try:
        return store.committed_tip().height
    finally:
        store.close()


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_four_processes_commit_survive_kill_9_and_stop_cleanly(tmp_path: pathlib.Path) -> None:
    subprocess.run(
        seqnet(
            "keygen",
            "--nodes",
            str(N),
            "--dir",
            str(tmp_path),
            "--base-port",
            str(free_base_port()),
        ),
        check=True,
        capture_output=True,
    )
    dbs = [tmp_path / f"node-{i}.db" for i in range(N)]

    def start(i: int) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"node-{i}.log").open("ab")
        return subprocess.Popen(
            seqnet("node", "--config", str(tmp_path / f"node-{i}.toml")), stderr=log
        )

    procs = [start(i) for i in range(N)]
    try:
        wait_until(lambda: all(db.exists() for db in dbs) and min(tip(db) for db in dbs) >= 20)
        procs[3].send_signal(signal.SIGKILL)  # no chance to clean up
        procs[3].wait()
        stopped_at = tip(dbs[3])
        wait_until(lambda: min(tip(db) for db in dbs[:3]) >= stopped_at + 30)
        procs[3] = start(3)
        target = min(tip(db) for db in dbs[:3])
        wait_until(lambda: tip(dbs[3]) >= target)  # caught up from its peers
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=20) for p in procs]
    assert codes[:3] == [0, 0, 0] and codes[3] == 0
    height = min(tip(db) for db in dbs)
    logs = []
    for db in dbs:
        store = Store(db, "seqnet-local")
        logs.append([c.block_hash for c in store.commits(1, height)])
        store.close()
    assert height >= stopped_at + 30 and all(log == logs[0] for log in logs)
