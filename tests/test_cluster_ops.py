"""`seqnet cluster up|status|down` against real processes: who answers, who lags, who stops.

Each test owns the processes it starts and kills them on the way out, found by
their config the same way `cluster down` finds them, so a failing assertion
never leaves validators running.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from ops import health, processes
from sequencer_net.node import network
from tests.cluster import free_base_port, seqnet, wait_until

# A stand-in validator API: `python -c STAND_IN node --config <dir>/node-<i>.toml SCENARIO`
# serves /v1/status with the chain climbing 2 blocks a second and decryption as SCENARIO
# says ({"lag": k} behind, or {"stuck_at": h}); its command line is a node's, as `status`
# wants from whoever answers. (A real node cannot be made to lag without changing its code.)
STAND_IN = """
import http.server, json, sys, time, tomllib
config, scenario = sys.argv[3], json.loads(sys.argv[4])
host, port = tomllib.load(open(config, "rb"))["api"].rsplit(":", 1)
start = time.monotonic()

class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        height = 400 + int(2 * (time.monotonic() - start))
        fixed = {k: v for k, v in scenario.items() if k not in ("lag", "stuck_at")}
        decrypted = scenario.get("stuck_at", height - scenario.get("lag", 0))
        body = {"height": height, "decrypted_height": decrypted, "round": height, "peers": 3,
                "last_commit_age_s": 0.1, "mempool": 0, "syncing": False, **fixed}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

http.server.HTTPServer((host, int(port)), Status).serve_forever()
"""


def run(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        seqnet(*args), capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def keygen(directory: pathlib.Path, base: int, *extra: str) -> pathlib.Path:
    result = run(
        "keygen", "--nodes", "4", "--dir", str(directory), "--base-port", str(base), *extra
    )
    assert result.returncode == 0, result.stderr
    return directory


def free_ports() -> int:
    return free_base_port(4, (0, 1000, 2000))


class Reaper:
    """Kills, at teardown, our children and every node process running a watched directory."""

    def __init__(self) -> None:
        self.dirs: list[pathlib.Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: list[str], cwd: pathlib.Path | None = None) -> subprocess.Popen[bytes]:
        out = subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, cwd=cwd)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for directory in self.dirs:
            if list(directory.glob("node-*.toml")):
                processes.terminate(processes.running_pids(directory), grace_s=5)


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    r = Reaper()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def detached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A cluster from `cluster up --detach`, committing; shared by tests that only read it."""
    directory = tmp_path_factory.mktemp("detached") / "net"
    r = Reaper()
    r.dirs.append(directory)
    try:
        up = run(
            "cluster", "up", "--detach", "--dir", str(directory), "--base-port", str(free_ports())
        )
        assert up.returncode == 0, up.stderr
        yield directory
    finally:
        r.close()


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("argv", "config"),
    [
        (
            ["python", "-m", "sequencer_net.cli", "node", "--config", "/d/node-0.toml"],
            "/d/node-0.toml",
        ),
        (["seqnet", "--log-level", "info", "node", "--config=n.toml"], "n.toml"),
        (["seqnet", "cluster", "up", "--dir", "d"], None),
        (["vim", "--config", "node-0.toml"], None),
        (["seqnet", "node", "--config"], None),
    ],
)
def test_config_argument_reads_a_node_command_line(argv: list[str], config: str | None) -> None:
    assert processes.config_argument(argv) == config


MEMBER = network.Member(1, pathlib.Path("/d/node-1.toml"), "127.0.0.1:1", "", "")
OURS = health.Identity("seqnet-local", "00ff")
LIMITS = health.Limits(max_lag=50, window_s=1.0)


def status(height: int, decrypted: int, **more: object) -> dict[str, object]:
    base = {"chain_id": "seqnet-local", "index": 1, "height": height, "peers": 3}
    return base | {"decrypted_height": decrypted, "last_commit_age_s": 0.1} | more


@pytest.mark.parametrize(
    ("before", "after", "owned", "verdict", "reason"),
    [
        (status(10, 9), status(14, 13), True, "ok", None),
        (status(10, 10), status(10, 10), True, "ok", None),  # idle chain: nothing to decrypt
        (None, status(400, 26), True, "LAG", "is 374 blocks behind committed height 400"),
        (status(10, 10), status(11, 10), True, "ok", None),  # committed while we looked
        (status(10, 8), status(14, 8), True, "LAG", "stuck at 8 for 1s with committed height 14"),
        (status(10, 8), status(10, 8), True, "LAG", "stuck at 8"),
        (status(10, 9), status(14, 13, last_commit_age_s=9.0), True, "LATE", "last commit 9.0s"),
        (status(10, 9), status(14, 13, peers=1), True, "LATE", "connected to 1 of 3 peers"),
        (None, status(14, 13, chain_id="other"), True, "FOREIGN", "for chain 'other'"),
        (None, {}, True, "FOREIGN", "for chain None"),  # not a seqnet node at all
        (None, status(14, 13, genesis="abcd"), True, "FOREIGN", "for genesis abcd"),
        (None, status(14, 13, index=2), True, "FOREIGN", "as validator 2, not 1"),
        (None, status(14, 13), False, "FOREIGN", "no process runs /d/node-1.toml"),
        (None, status(14, 13), None, "ok", None),  # no /proc: cannot tell
    ],
)
def test_assess_names_what_is_wrong(
    before: dict[str, object] | None,
    after: dict[str, object],
    owned: bool | None,
    verdict: str,
    reason: str | None,
) -> None:
    judged = health.assess(MEMBER, OURS, 4, before, after, owned, LIMITS)
    assert judged.verdict == verdict
    assert len(judged.problems) == (reason is not None)
    assert reason is None or reason in judged.problems[0]


# ---------------------------------------------------------------- status on processes


def test_status_fails_a_node_whose_decryption_lags_or_stands_still(
    tmp_path: pathlib.Path, reaper: Reaper
) -> None:
    directory = keygen(tmp_path / "net", free_ports())
    chain_id = json.loads((directory / "genesis.json").read_text())["chain_id"]
    scenarios: list[dict[str, Any]] = [
        {"lag": 0},
        {"lag": 374},
        {"stuck_at": 395},
        {"lag": 0, "genesis": "feed"},
    ]
    for i, scenario in enumerate(scenarios):
        config = str(directory / f"node-{i}.toml")
        answers = scenario | {"chain_id": chain_id, "index": i}
        argv = ["node", "--config", config, json.dumps(answers)]
        reaper.spawn([sys.executable, "-c", STAND_IN, *argv])
    members = network.members(directory)
    wait_until(lambda: all(health.node_status(m) for m in members), 20)
    result = run("cluster", "status", "--dir", str(directory))
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("node 0  ok") and "lag    0" in lines[0]
    assert lines[1].startswith("node 1  LAG") and "lag  374" in lines[1]
    assert any(
        line.startswith("node 1: decrypted height")
        and "374 blocks behind" in line
        and "(bound 50)" in line
        for line in lines
    ), result.stdout
    assert any(line.startswith("node 2: decrypted height stuck at 395") for line in lines)
    assert any(line.startswith("node 3: ") and "genesis feed" in line for line in lines)
    assert lines[-1] == "NOT all nodes are up, committing and decrypting"


def test_status_passes_a_live_cluster_and_shows_its_lag(detached: pathlib.Path) -> None:
    result = run("cluster", "status", "--dir", str(detached))
    assert result.returncode == 0, result.stdout
    assert result.stdout.count(" ok ") == 4 and " lag " in result.stdout
    assert (
        result.stdout.splitlines()[-1]
        == "all nodes committing and decrypting (lag bound 50 blocks)"
    )


def test_status_fails_when_another_cluster_holds_the_ports(
    detached: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    api = network.members(detached)[0].api
    base = int(api.rpartition(":")[2]) - 1000  # the same ports as the running cluster
    same_chain = keygen(tmp_path / "twin", base)  # the default chain id, other keys
    result = run("cluster", "status", "--dir", str(same_chain))
    assert result.returncode == 1 and "FOREIGN" in result.stdout
    assert f"node 0: http://{api} answers for genesis" in result.stdout  # same chain id
    copy = tmp_path / "copy"  # the very same genesis, but none of these configs runs
    copy.mkdir()
    for path in detached.glob("*"):
        if path.name == "genesis.json" or path.suffix == ".toml":
            (copy / path.name).write_text(path.read_text().replace(str(detached), str(copy)))
    result = run("cluster", "status", "--dir", str(copy))
    assert result.returncode == 1
    assert f"node 0: http://{api} answers, but no process runs {copy}" in result.stdout
    other_chain = keygen(tmp_path / "other", base, "--chain-id", "other")
    result = run("cluster", "status", "--dir", str(other_chain))
    assert result.returncode == 1
    assert "answers for chain 'seqnet-local', not this cluster's 'other'" in result.stdout


# ---------------------------------------------------------------- down and the nodes' lifetime


def test_down_stops_detached_nodes_even_restarted_by_hand(
    tmp_path: pathlib.Path, reaper: Reaper
) -> None:
    directory = tmp_path / "net"
    reaper.dirs.append(directory)
    up = run("cluster", "up", "--detach", "--dir", str(directory), "--base-port", str(free_ports()))
    assert up.returncode == 0, up.stderr
    recorded = json.loads((directory / "cluster.json").read_text())["pids"]
    assert processes.running_pids(directory) == sorted(recorded)  # they outlived `up`
    for pid in recorded[:2]:
        os.kill(pid, signal.SIGKILL)
    (tmp_path / "link").symlink_to(directory)
    by_hand = [
        reaper.spawn(seqnet("node", "--config", "node-0.toml"), cwd=directory),
        reaper.spawn(seqnet("node", f"--config={tmp_path}/link/node-1.toml")),
    ]
    wait_until(lambda: len(processes.running_pids(directory)) == 4, 20)
    again = run("cluster", "up", "--detach", "--dir", str(directory))
    assert again.returncode == 2 and "4 node(s)" in again.stderr and "are running" in again.stderr
    down = run("cluster", "down", "--dir", str(directory))
    assert down.returncode == 0 and down.stdout.strip() == "stopped 4 validators", down.stdout
    assert all(p.poll() is not None for p in by_hand)  # `down` waited for them to exit
    assert processes.running_pids(directory) == []
    assert run("cluster", "down", "--dir", str(directory)).stdout.strip() == "stopped 0 validators"


def test_foreground_nodes_die_with_an_up_killed_by_sigkill(
    tmp_path: pathlib.Path, reaper: Reaper
) -> None:
    directory = keygen(tmp_path / "net", free_ports())
    reaper.dirs.append(directory)
    up = reaper.spawn(seqnet("cluster", "up", "--dir", str(directory)))
    members = network.members(directory)
    wait_until(lambda: all(health.is_committing(health.node_status(m), 4) for m in members), 60)
    up.send_signal(signal.SIGKILL)
    up.wait()
    wait_until(lambda: processes.running_pids(directory) == [], 20)
    for i in range(4):  # each got SIGTERM from the kernel and stopped cleanly
        assert "msg=stopping signal=SIGTERM" in (directory / f"node-{i}.log").read_text()
