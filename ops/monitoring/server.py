"""A Prometheus server of its own for a local cluster (``seqnet cluster up --prometheus``).

It runs the ``prometheus`` binary found on PATH (Debian: ``apt-get install prometheus``)
as a child process on the bundle's config, listening on 127.0.0.1 only, with its
storage and log in the cluster directory so ``--fresh`` clears them with the chain they
describe. Like foreground nodes it dies with its starter, however that dies.
"""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ops import processes
from ops.monitoring import PROMETHEUS_CONFIG

BINARY = "prometheus"
DEFAULT_PORT = 9090
HOST = "127.0.0.1"
STORAGE = "prometheus-data"
LOG = "prometheus.log"
INSTALL_HINT = "install it with `apt-get install prometheus` (Debian, Ubuntu)"
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


class PrometheusError(Exception):
    """Prometheus could not be started here (one line for the operator)."""


@dataclass(slots=True)
class Prometheus:
    """A running Prometheus server: our child process and where it answers."""

    proc: subprocess.Popen[bytes]
    url: str
    log: pathlib.Path

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until ``/-/ready`` answers 200; PrometheusError if it exits or stays unready."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with status {self.proc.returncode}: {_tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise PrometheusError(f"prometheus not ready after {timeout_s:g}s: see {self.log}")
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM (it flushes its storage), SIGKILL after a grace period; its exit code."""
        return processes.stop_procs([self.proc], STOP_GRACE_S)[0]


def find_binary() -> str | None:
    """The ``prometheus`` on PATH, or None."""
    return shutil.which(BINARY)


def check_port_free(port: int) -> None:
    """Refuse early, before any node starts, a port something else holds.

    The Debian package's own service listens on 9090, the default: say so.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            raise PrometheusError(
                f"port {HOST}:{port} for Prometheus is in use (another Prometheus, such as the "
                "Debian package's service?): stop it or pick one with --prometheus-port"
            ) from None


def start(
    directory: pathlib.Path, port: int, binary: str, *, die_with_parent: bool = True
) -> Prometheus:
    """Start Prometheus on ``directory``'s bundle; it is not ready yet (`wait_ready`)."""
    log = directory / LOG
    cmd = [
        binary,
        f"--config.file={(directory / PROMETHEUS_CONFIG).resolve()}",
        f"--storage.tsdb.path={(directory / STORAGE).resolve()}",
        f"--web.listen-address={HOST}:{port}",
        "--log.level=warn",
    ]
    preexec = processes.die_with_parent() if die_with_parent else None
    try:
        with open(log, "ab") as out:  # the child keeps its own copy
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec)
    except OSError as exc:
        raise PrometheusError(f"cannot run {binary}: {exc}") from None
    return Prometheus(proc, f"http://{HOST}:{port}", log)


def _tail(path: pathlib.Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
