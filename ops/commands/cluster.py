"""``seqnet cluster up | status | down``: a local cluster of validator processes on 127.0.0.1."""

from __future__ import annotations

import argparse
import pathlib
import time
from typing import TYPE_CHECKING

from sequencer_net.cli.args import DEFAULT_CLUSTER_DIR, CliError, positive, write_network

if TYPE_CHECKING:
    import subprocess

    from ops.monitoring import server


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cluster",
        help="run a local multi-node cluster on 127.0.0.1",
        description="Start, inspect and stop N validator processes on this machine.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up",
        help="start N validators and wait until all commit (Ctrl-C stops them)",
        description=(
            "Write a genesis and keys into DIR (unless it has them), start one `seqnet node` "
            "process per validator, show progress until every node is connected and "
            "committing, print the endpoints, and keep running until Ctrl-C (or SIGTERM), "
            "then stop them all cleanly; they get SIGTERM too if this process is killed. "
            "With --detach, return once they commit, leaving them to `cluster down`. "
            "Every start (re)writes a monitoring bundle into DIR for your own Prometheus "
            "and Grafana: prometheus.yml, alerts.yml, grafana-dashboard.json."
        ),
    )
    up.add_argument("--nodes", type=positive, default=4, metavar="N", help="validators (4)")
    up.add_argument("--dir", type=pathlib.Path, default=DEFAULT_CLUSTER_DIR, help="state dir")
    up.add_argument("--base-port", type=positive, default=7100, help="first libp2p port (7100)")
    up.add_argument("--fresh", action="store_true", help="delete DIR's keys and data first")
    up.add_argument("--detach", action="store_true", help="leave the nodes running and return")
    up.add_argument(
        "--test-network", action="store_true",
        help="write a test network (as `keygen --test-network`): each validator gets an admin "
        "endpoint on 127.0.0.1 (base-port + 3000 + i, token in DIR/admin-token) for "
        "`seqnet chaos` partitions, delay/loss and Byzantine faults; never for a real network",
    )  # fmt: skip
    up.add_argument("--timeout", type=positive, default=60, help="seconds to wait for commits")
    up.add_argument(
        "--prometheus", action="store_true",
        help="also run a Prometheus server (the `prometheus` binary on PATH; Debian package "
        "`prometheus`) on DIR/prometheus.yml, storage in DIR/prometheus-data, stopped with "
        "the cluster; without the binary, say so and go on (not with --detach)",
    )  # fmt: skip
    up.add_argument(
        "--prometheus-port", type=positive, default=9090, metavar="PORT",
        help="port of that Prometheus on 127.0.0.1 (9090)",
    )  # fmt: skip
    up.add_argument(
        "--scrape-interval", type=positive, default=5, metavar="SECONDS",
        help="scrape and rule-evaluation interval written into DIR/prometheus.yml; the "
        "alerts' `for:` durations scale with it (5)",
    )  # fmt: skip
    up.set_defaults(func=_cmd_cluster_up)
    for add in (_add_cluster_status, _add_cluster_down):
        q = add(actions)
        q.add_argument("--dir", type=pathlib.Path, default=DEFAULT_CLUSTER_DIR, help="state dir")


def _add_cluster_status(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    status = actions.add_parser(
        "status",
        help="each node's height, decryption lag, round, peers; exit 0 only if all are healthy",
        description="Ask every node of DIR for its status twice, --window apart; exit 0 only "
        "if each answers as itself (chain id, genesis, validator index, a process running its "
        "config), commits, and decrypts within --max-lag blocks of its committed height, "
        "advancing.",
    )
    status.add_argument(
        "--max-lag", type=positive, default=None, metavar="BLOCKS",
        help="fail a node whose decrypted height is more blocks behind its committed one "
        "(default 50)",
    )  # fmt: skip
    status.add_argument(
        "--window", type=positive, default=None, metavar="SECONDS",
        help="fail a node behind on decryption that decrypts nothing for this long (default 1)",
    )  # fmt: skip
    status.set_defaults(func=_cmd_status)
    return status


def _add_cluster_down(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    down = actions.add_parser(
        "down",
        help="stop every node process of DIR, however it was started",
        description="Stop every process running `node --config DIR/node-<i>.toml` (found by "
        "command line, so nodes restarted by hand too): SIGTERM, then SIGKILL after 15 s.",
    )
    down.set_defaults(func=_cmd_cluster_down)
    return down


def _cmd_cluster_up(args: argparse.Namespace) -> int:
    import shutil
    import sys

    from ops import processes
    from ops.monitoring import server
    from sequencer_net.node.network import NetworkFilesError

    if args.prometheus and args.detach:
        raise CliError(
            "--prometheus stops with the cluster's Ctrl-C, so not with --detach: run "
            f"`prometheus --config.file={args.dir}/prometheus.yml` yourself"
        )
    if args.fresh and args.dir.exists():
        shutil.rmtree(args.dir)
    if not (args.dir / "genesis.json").exists():
        genesis = write_network(
            args.dir, args.nodes, base_port=args.base_port, test_network=args.test_network
        )
        test = " (a test network: admin endpoints on base-port + 3000 + i)"
        print(
            f"wrote genesis and keys for {genesis.n} validators into {args.dir}"
            + (test if args.test_network else "")
        )
    elif len(list(args.dir.glob("node-*.toml"))) != args.nodes:
        raise CliError(f"{args.dir} holds another cluster size: add --fresh to replace it")
    elif args.test_network and not _is_test_network(args.dir):
        raise CliError(f"{args.dir} holds a network that is not a test network: add --fresh "
                       "to replace it with one")  # fmt: skip
    binary = _prometheus_binary(args)
    try:
        procs = processes.start(args.dir, args.log_level, detach=args.detach)
    except (processes.ClusterError, NetworkFilesError) as exc:
        raise CliError(str(exc)) from None
    written = _write_monitoring(args)  # once ours: never over a running cluster's
    prometheus = None
    try:
        if binary is not None and written:  # with the nodes: scraped from the first block on
            try:
                prometheus = server.start(args.dir, args.prometheus_port, binary)
            except server.PrometheusError as exc:
                print(f"--prometheus: {exc}; going on without it", file=sys.stderr)
        return _run_cluster(args, procs, prometheus)
    finally:
        if prometheus is not None:
            _stop_prometheus(prometheus)


def _is_test_network(directory: pathlib.Path) -> bool:
    from sequencer_net.node.genesis import GenesisError, load_genesis

    try:
        return load_genesis(directory / "genesis.json").is_test_network
    except (GenesisError, OSError) as exc:
        raise CliError(str(exc)) from None


def _write_monitoring(args: argparse.Namespace) -> bool:
    """The bundle for the operator's own Prometheus and Grafana; a failure only warns."""
    import sys

    from ops import monitoring

    try:
        bundle = monitoring.write_bundle(args.dir, args.scrape_interval)
    except monitoring.MonitoringError as exc:
        print(f"no monitoring bundle: {exc}", file=sys.stderr)
        return False
    names = ", ".join(path.name for path in bundle.files())
    print(f"monitoring: {names} in {args.dir} (see docs/monitoring.md)")
    return True


def _prometheus_binary(args: argparse.Namespace) -> str | None:
    """The binary to run for --prometheus; None (said why) when there is none."""
    import sys

    from ops.monitoring import server

    if not args.prometheus:
        return None
    binary = server.find_binary()
    if binary is None:
        print(
            f"--prometheus: no `prometheus` on PATH, going on without it; {server.INSTALL_HINT}",
            file=sys.stderr,
        )
        return None
    try:
        server.check_port_free(args.prometheus_port)
    except server.PrometheusError as exc:
        raise CliError(str(exc)) from None
    return binary


def _announce_prometheus(args: argparse.Namespace, prometheus: server.Prometheus) -> None:
    """Wait until it serves, then print where; if it never does, say so and go on."""
    import sys

    from ops.monitoring import server

    try:
        prometheus.wait_ready()
    except server.PrometheusError as exc:
        print(f"--prometheus: {exc}; going on without it", file=sys.stderr)
        return
    url = prometheus.url
    print(
        f"prometheus {url} (every {args.scrape_interval}s; data in "
        f"{args.dir / server.STORAGE}, log {prometheus.log})\n"
        f"  alerts     {url}/alerts\n"
        f"  targets    {url}/targets\n"
        f"  query API  {url}/api/v1/query?query=seqnet_height\n"
        f"  alert API  {url}/api/v1/alerts",
        flush=True,
    )


def _stop_prometheus(prometheus: server.Prometheus) -> None:
    try:
        code = prometheus.stop()
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        prometheus.proc.kill()
        code = prometheus.proc.wait()
    print(f"stopped prometheus (exit code {code})")


def _run_cluster(
    args: argparse.Namespace,
    procs: list[subprocess.Popen[bytes]],
    prometheus: server.Prometheus | None,
) -> int:
    """Wait for the nodes, show them, keep them until Ctrl-C or SIGTERM, stop them."""
    import signal

    from ops import health, processes
    from sequencer_net.node.network import NetworkFilesError, members

    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(1))
    try:
        _wait_for_cluster(args, procs)
        for line in health.status_lines(args.dir)[1]:
            print(line)
        if prometheus is not None:
            _announce_prometheus(args, prometheus)
        if args.detach:
            print(f"running; `seqnet cluster status --dir {args.dir}`, then `cluster down`")
            return 0
        here = "" if args.dir == DEFAULT_CLUSTER_DIR else f" --dir {args.dir}"
        api = members(args.dir)[0].api
        print(
            f"{args.nodes} validators committing; Ctrl-C stops them. In another terminal:\n"
            f"  seqnet submit{here} --rollup rollup-a 'hello'\n"
            f"  seqnet cluster status{here}\n"
            f"  curl -s http://{api}/v1/status",
            flush=True,
        )
        while not stop_requested and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        if not stop_requested:
            raise CliError("a node exited: see " + str(args.dir / "node-<i>.log"))
    except (processes.ClusterError, NetworkFilesError, CliError) as exc:
        processes.stop_procs(procs)
        (args.dir / processes.STATE_FILE).unlink(missing_ok=True)
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        stop_requested.append(2)  # Ctrl-C reached foreground nodes too: they are stopping
    try:
        signalled = 2 in stop_requested and not args.detach  # detached: their own session
        codes = processes.stop_procs(procs, signalled=signalled)
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        codes = processes.stop_procs(procs, timeout_s=0)
    finally:
        (args.dir / processes.STATE_FILE).unlink(missing_ok=True)
    print(f"stopped {len(procs)} validators (exit codes {codes})")
    return 0 if all(c == 0 for c in codes) else 1


def _wait_for_cluster(args: argparse.Namespace, procs: list) -> None:  # type: ignore[type-arg]
    from ops import health
    from sequencer_net.progress import Progress

    bar = Progress(args.nodes, "nodes committing")

    def show(ready: int, total: int) -> None:
        if ready != bar.done:
            bar.done = ready - 1
            bar.advance()

    try:
        health.wait_until_committing(args.dir, procs, args.timeout, show)
    finally:
        bar.close()


def _cmd_status(args: argparse.Namespace) -> int:
    from ops import health
    from sequencer_net.node.network import NetworkFilesError

    limits = health.Limits(
        max_lag=args.max_lag or health.MAX_DECRYPTION_LAG,
        window_s=args.window or health.STALL_WINDOW_S,
    )
    try:
        ok, lines = health.status_lines(args.dir, limits)
    except NetworkFilesError as exc:
        raise CliError(str(exc)) from None
    for line in lines:
        print(line)
    print(
        f"all nodes committing and decrypting (lag bound {limits.max_lag} blocks)"
        if ok
        else "NOT all nodes are up, committing and decrypting"
    )
    return 0 if ok else 1


def _cmd_cluster_down(args: argparse.Namespace) -> int:
    from ops import processes
    from sequencer_net.node.network import NetworkFilesError

    try:
        stopped = processes.stop(args.dir)
    except (processes.ClusterError, NetworkFilesError) as exc:
        raise CliError(str(exc)) from None
    killed = f" ({stopped.killed} ignored SIGTERM: killed)" if stopped.killed else ""
    print(f"stopped {stopped.count} validators{killed}")
    return 0
