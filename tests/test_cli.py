"""The seqnet command as a user runs it: a real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from sequencer_net import __version__
from sequencer_net.node.storage import Store
from tests.test_storage import NET, chain


def seqnet(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sequencer_net.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version() -> None:
    result = seqnet("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"seqnet {__version__}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["sim"],
        ["keygen"],
        ["encrypt"],
        ["node"],
        ["cluster"],
        ["cluster", "up"],
        ["cluster", "status"],
        ["cluster", "down"],
        ["submit"],
        ["bench"],
        ["soak"],
    ],
)
def test_help_on_every_command(command: list[str]) -> None:
    result = seqnet(*command, "--help")
    assert result.returncode == 0 and "usage: seqnet" in result.stdout


def test_sim_prints_a_summary_and_exits_zero() -> None:
    result = seqnet("sim", "--seeds", "3", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "runs              3 (n=4: 1, n=7: 1, n=10: 1)" in result.stdout
    assert "violations        0 failing runs" in result.stdout


def test_sim_names_the_failing_seed_and_exits_nonzero() -> None:
    result = seqnet(
        "sim",
        "--nodes",
        "4",
        "--crashed",
        "2",
        "--byzantine",
        "0",
        "--faults",
        "none",
        "--seeds",
        "1",
        "--start-seed",
        "5",
        "--liveness-ms",
        "5000",
    )
    assert result.returncode == 1
    assert "FAILED seed 5 n=4" in result.stdout
    assert "replay: seqnet sim --nodes 4 --start-seed 5 --seeds 1" in result.stdout
    assert "beyond f=1" in result.stderr


def test_unknown_fault_is_one_clear_line() -> None:
    result = seqnet("sim", "--faults", "meteor")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("seqnet: error: unknown fault(s) meteor")


def test_bad_number_is_rejected_by_argparse() -> None:
    result = seqnet("sim", "--seeds", "zero")
    assert result.returncode == 2 and "expected a whole number" in result.stderr


def test_keygen_then_encrypt(tmp_path: pathlib.Path) -> None:
    from mev import kem
    from sequencer_net.base import codec
    from sequencer_net.node.genesis import load_genesis

    result = seqnet("keygen", "--nodes", "4", "--dir", str(tmp_path))
    assert result.returncode == 0 and "n=4, f=1, threshold t=2" in result.stdout
    again = seqnet("keygen", "--nodes", "4", "--dir", str(tmp_path))
    assert again.returncode == 2 and "use --force" in again.stderr
    genesis = load_genesis(tmp_path / "genesis.json")
    enc = seqnet(
        "encrypt",
        "--genesis",
        str(tmp_path / "genesis.json"),
        "--namespace",
        "rollup-a",
        "hello rollup",
    )
    assert enc.returncode == 0
    ct = codec.decode(kem.Ciphertext, bytes.fromhex(enc.stdout.strip()))
    kem.check(genesis.threshold_key, genesis.chain_id, ct)
    bad = seqnet("encrypt", "--genesis", str(tmp_path / "genesis.json"), "--namespace", "x", "y")
    assert bad.returncode == 2 and "not registered" in bad.stderr


def test_keygen_force_starts_over_with_new_databases(tmp_path: pathlib.Path) -> None:
    assert seqnet("keygen", "--nodes", "4", "--dir", str(tmp_path)).returncode == 0
    (tmp_path / "node-0.db").unlink()
    old = Store(tmp_path / "node-0.db", NET.chain_id)  # another network's history
    old.append_commit(chain(1)[0])
    old.close()
    again = seqnet("keygen", "--nodes", "4", "--dir", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr
    forced = seqnet("keygen", "--nodes", "4", "--dir", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    fresh = Store(tmp_path / "node-0.db", "seqnet-local")
    assert fresh.restored() is None


def test_keygen_makes_private_files_whatever_the_umask(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "net"
    keygen = [
        sys.executable,
        "-m",
        "sequencer_net.cli",
        "keygen",
        "--nodes",
        "4",
        "--dir",
        str(out),
    ]
    result = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", *keygen],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o700
    for path in out.iterdir():
        mode = path.stat().st_mode & 0o777
        assert mode == (0o644 if path.name == "genesis.json" else 0o600), (path.name, oct(mode))


def test_sim_fairness_prints_the_policy_table() -> None:
    result = seqnet("sim", "--fairness", "--nodes", "4", "--seeds", "2", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "| front-run | median-timestamp |" in result.stdout
    assert "median-timestamp / arrival success" in result.stdout


def test_sim_fairness_refuses_batch_order_fair_below_4f_plus_1() -> None:
    result = seqnet("sim", "--fairness", "--nodes", "4", "--policies", "batch-order-fair")
    assert result.returncode == 2 and "needs n >= 4f+1" in result.stderr


def test_node_with_a_missing_or_bad_config_is_one_clear_line(tmp_path: pathlib.Path) -> None:
    missing = seqnet("node", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('genesis = "g.json"\nkeys = "k.json"\ndatabase = "d.db"\ncolour = "red"\n')
    result = seqnet("node", "--config", str(bad))
    assert result.returncode == 2 and "unknown setting(s) colour" in result.stderr
    bad.write_text('genesis = "g.json"\nkeys = "k.json"\ndatabase = "d.db"\n')
    result = seqnet("node", "--config", str(bad))
    assert result.returncode == 2 and "g.json" in result.stderr


def test_cluster_and_submit_failures_are_one_clear_line(tmp_path: pathlib.Path) -> None:
    empty = str(tmp_path / "empty")
    for args in (
        ["cluster", "status", "--dir", empty],
        ["cluster", "down", "--dir", empty],
        ["submit", "--dir", empty, "--rollup", "rollup-a", "hi"],
    ):
        result = seqnet(*args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
    seqnet("keygen", "--nodes", "4", "--dir", str(tmp_path / "net"), "--base-port", "21100")
    other_size = seqnet("cluster", "up", "--nodes", "7", "--dir", str(tmp_path / "net"))
    assert other_size.returncode == 2 and "--fresh" in other_size.stderr
    not_running = seqnet("cluster", "status", "--dir", str(tmp_path / "net"))
    assert not_running.returncode == 1 and "DOWN" in not_running.stdout
    unknown = seqnet(
        "submit", "--dir", str(tmp_path / "net"), "--rollup", "nope", "--node", "127.0.0.1:1", "x"
    )
    assert unknown.returncode == 2 and "not registered" in unknown.stderr


def test_bench_measures_a_real_cluster_and_loses_nothing() -> None:
    from tests.cluster import free_base_port

    def table(first_column: str) -> list[dict[str, str]]:
        """The rows of the Markdown table whose header starts with ``first_column``."""
        start = next(k for k, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
        names = [cell.strip() for cell in lines[start].strip("|").split("|")]
        rows = []
        for line in lines[start + 2 :]:
            if not line.startswith("| "):
                break
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append(dict(zip(names, cells, strict=True)))
        return rows

    base = free_base_port(4, (0, 1000, 2000))
    args = ["bench", "--rates", "20,40", "--seconds", "2", "--backlog", "100"]
    result = seqnet(*args, "--base-port", str(base), timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    rates = table("offered tx/s")
    assert len(rates) == 2, result.stdout
    for row in rates:
        assert row["lost"] == "0", row
        assert row["rollup verified"] == row["decrypted"], row  # every one reached the rollup
        for column in ("client p50 ms", "rollup p50 ms", "rollup p99 ms", "subscriber CPU %"):
            assert row[column].isdigit(), (column, row)  # measured (not nan), whatever its value
    assert "saturation: 100/100 decrypted" in result.stdout
    assert "verified at the rollup: 100/100" in result.stdout
    assert "exit codes [0, 0, 0, 0]" in result.stdout
    memory = table("phase")
    assert [row["phase"] for row in memory] == ["start", "20 tx/s", "40 tx/s", "backlog"]
    for row in memory:
        for column in ("node 0 MiB", "node 3 MiB", "max MiB", "peak MiB during"):
            assert row[column].isdigit() and int(row[column]) > 0, (column, row)  # read, not nan
    alone = re.search(r"load client alone against a null sink: (\d+) tx/s", result.stdout)
    assert alone is not None and int(alone.group(1)) > 0, result.stdout
    costs = table("load")
    assert [row["load"] for row in costs] == ["20 tx/s", "40 tx/s", "backlog"], result.stdout
    for row in costs:
        for column in ("certificate B", "proof B", "header+sign us", "client verify us"):
            assert row[column].isdigit(), (column, row)
