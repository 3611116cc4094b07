"""The monitoring bundle of a cluster directory: Prometheus config, alert rules, a dashboard.

``seqnet cluster up`` writes it on every start, so operators can point their own
Prometheus and Grafana at a local cluster without reading its configs; with
``--prometheus`` it also runs a Prometheus server on it (``ops.monitoring.server``).
The files are derived from the directory itself (each node's metrics address from its
config, the quorum from the genesis), never from defaults, so they stay right for a
cluster written with another ``--base-port`` or size. See ``docs/monitoring.md``.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any

from ops.monitoring import alerts, dashboard, scrape
from sequencer_net.node.network import NetworkFilesError, members, read_genesis

PROMETHEUS_CONFIG = "prometheus.yml"
ALERT_RULES = "alerts.yml"
DASHBOARD = "grafana-dashboard.json"
DEFAULT_INTERVAL_S = 5


class MonitoringError(Exception):
    """The bundle cannot be written for this directory (one line for the operator)."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """Where the bundle's files are."""

    prometheus_config: pathlib.Path
    alert_rules: pathlib.Path
    dashboard: pathlib.Path

    def files(self) -> tuple[pathlib.Path, ...]:
        return (self.prometheus_config, self.alert_rules, self.dashboard)


def write_bundle(directory: pathlib.Path, interval_s: int = DEFAULT_INTERVAL_S) -> Bundle:
    """Write the three files into ``directory`` (replacing older ones); where they are.

    ``interval_s`` is Prometheus' scrape and rule-evaluation interval; the alerts'
    ``for:`` durations count evaluations, so they shrink with it (tests use 1 s).
    """
    if interval_s < 1:
        raise MonitoringError(f"interval must be at least 1 s, got {interval_s}")
    try:
        nodes = members(directory)
        committee = read_genesis(directory).committee()
    except NetworkFilesError as exc:
        raise MonitoringError(str(exc)) from None
    unwatched = [m.index for m in nodes if not m.metrics]
    if unwatched:
        raise MonitoringError(
            f"validators {unwatched} of {directory} have no metrics address in their config"
        )
    bundle = Bundle(directory / PROMETHEUS_CONFIG, directory / ALERT_RULES, directory / DASHBOARD)
    config = scrape.config(nodes, interval_s=interval_s, rule_files=[ALERT_RULES])
    rules = alerts.rules(n=committee.n, quorum=committee.quorum)
    try:
        _write(bundle.prometheus_config, _yaml(config, scrape.HEADER))
        _write(bundle.alert_rules, _yaml(alerts.rule_file(rules, interval_s), alerts.HEADER))
        _write(bundle.dashboard, json.dumps(dashboard.build(interval_s), indent=2) + "\n")
    except OSError as exc:
        raise MonitoringError(f"cannot write the monitoring bundle: {exc}") from None
    return bundle


def _write(path: pathlib.Path, text: str) -> None:
    """Replace ``path`` whole: a Prometheus reloading it never reads half a file."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(text)
    partial.replace(path)


def _yaml(document: dict[str, Any], header: str) -> str:
    """YAML for people to read: keys in our order, PromQL on one line, a comment on top."""
    import yaml

    body: str = yaml.safe_dump(document, sort_keys=False, width=1_000, allow_unicode=True)
    return header + body
