"""``prometheus.yml``: one scrape job over every validator's ``/metrics``.

The targets are the ``metrics`` addresses in the nodes' configs (where ``cluster
status`` finds them too), each labelled with its ``validator`` index: the label every
alert and dashboard panel names a node by, since an address says nothing to an operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sequencer_net.node.network import Member

JOB = "seqnet"
MAX_SCRAPE_TIMEOUT_S = 10  # Prometheus' own default; it refuses a timeout above the interval
HEADER = (
    "# Prometheus configuration for this seqnet cluster, written by `seqnet cluster up`\n"
    "# (rewritten on every start: edit a copy). Run: prometheus --config.file=<this file>\n"
)


def config(members: Sequence[Member], *, interval_s: int, rule_files: list[str]) -> dict[str, Any]:
    """The configuration: ``rule_files`` are relative to the file, so the bundle can move."""
    interval = f"{interval_s}s"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": f"{min(interval_s, MAX_SCRAPE_TIMEOUT_S)}s",
            "evaluation_interval": interval,
        },
        "rule_files": list(rule_files),
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [m.metrics], "labels": {"validator": str(m.index)}} for m in members
                ],
            }
        ],
    }
