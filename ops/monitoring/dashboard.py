"""``grafana-dashboard.json``: a Grafana dashboard of a seqnet cluster.

Built with Grafana's own typed builders (``grafana-foundation-sdk``, generated from
the schemas Grafana validates dashboards against) rather than hand-written JSON, so a
misspelt field fails here instead of being dropped silently by Grafana. It is the
classic dashboard model that every Grafana since 10 imports. Every panel reads the
``datasource`` variable, so it works with whatever Prometheus the operator picks, and
the ``validator`` variable narrows it to some nodes.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from ops.monitoring.scrape import JOB

UID = "seqnet-cluster"
TITLE = "seqnet cluster"
SELECT = f'job="{JOB}", validator=~"$validator"'
RATE = "[$__rate_interval]"

# (title, unit, [(expr, legend)], width): rows of panels, each row 24 columns wide
Panel = tuple[str, str, list[tuple[str, str]], int]


def _quantiles(histogram: str, by: str = "") -> list[tuple[str, str]]:
    """p50 and p99 of a latency histogram over the selected validators."""
    group = f"{by}, le" if by else "le"
    legend = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({histogram}_bucket{{{SELECT}}}{RATE})))",
            f"p{int(q * 100)}{legend}",
        )
        for q in (0.5, 0.99)
    ]


def _rows() -> list[tuple[str, list[Panel]]]:
    per_node = "{{validator}}"
    return [
        (
            "Liveness",
            [
                (
                    "Committed height",
                    "none",
                    [(f"seqnet_height{{{SELECT}}}", per_node)],
                    12,
                ),
                (
                    "Seconds since the last commit",
                    "s",
                    [(f"time() - seqnet_last_commit_timestamp_seconds{{{SELECT}}}", per_node)],
                    12,
                ),
                ("Consensus round", "none", [(f"seqnet_round{{{SELECT}}}", per_node)], 8),
                (
                    "Failed rounds /s, by leader and cause (as the validators saw them)",
                    "ops",
                    [
                        (
                            "sum by (leader, cause) "
                            f"(rate(seqnet_round_failures_total{{{SELECT}}}{RATE})) > 0",
                            "leader {{leader}} {{cause}}",
                        )
                    ],
                    8,
                ),
                (
                    "Round timeouts /s",
                    "ops",
                    [
                        (f"rate(seqnet_timeouts_total{{{SELECT}}}{RATE})", f"local {per_node}"),
                        (
                            f"rate(seqnet_rounds_timed_out_total{{{SELECT}}}{RATE})",
                            f"timeout certificate {per_node}",
                        ),
                    ],
                    8,
                ),
                (
                    "Blocks behind the committed height",
                    "none",
                    [
                        (
                            f"seqnet_height{{{SELECT}}} - seqnet_decrypted_height{{{SELECT}}}",
                            f"not decrypted {per_node}",
                        ),
                        (
                            f"seqnet_height{{{SELECT}}} - seqnet_certified_height{{{SELECT}}}",
                            f"not certified {per_node}",
                        ),
                    ],
                    8,
                ),
            ],
        ),
        (
            "Latency (measured at the validator that received the submission)",
            [
                (
                    "Submit -> commit, by namespace",
                    "s",
                    _quantiles("seqnet_submit_to_commit_seconds", by="namespace"),
                    6,
                ),
                (
                    "Commit -> decrypted, by namespace",
                    "s",
                    _quantiles("seqnet_commit_to_decrypt_seconds", by="namespace"),
                    6,
                ),
                (
                    "Submit -> decrypted, by namespace",
                    "s",
                    _quantiles("seqnet_submit_to_decrypt_seconds", by="namespace"),
                    6,
                ),
                (
                    "Submit -> certified (served to rollups), by namespace",
                    "s",
                    _quantiles("seqnet_submit_to_certified_seconds", by="namespace"),
                    6,
                ),
            ],
        ),
        (
            "Fairness (each validator against its own arrival times)",
            [
                (
                    "Inverted pairs in a block, share of pairs",
                    "percentunit",
                    [
                        (
                            f"rate(seqnet_order_inversions_total{{{SELECT}}}{RATE}) / "
                            f"rate(seqnet_order_pairs_total{{{SELECT}}}{RATE})",
                            per_node,
                        )
                    ],
                    12,
                ),
                (
                    "Inclusion delay (blocks from arrival to the ordering block)",
                    "none",
                    _quantiles("seqnet_inclusion_delay_blocks"),
                    12,
                ),
            ],
        ),
        (
            "Decryption shares, by sender (a withholding validator's rate drops to 0)",
            [
                (
                    "Share batches received /s",
                    "ops",
                    [_by_sender("seqnet_decryption_shares_received_total")],
                    8,
                ),
                (
                    "Late share batches /s (over 1 s after the block's commit)",
                    "ops",
                    [_by_sender("seqnet_decryption_shares_late_total")],
                    8,
                ),
                (
                    "Invalid share batches /s (failed their proof)",
                    "ops",
                    [_by_sender("seqnet_decryption_shares_invalid_total")],
                    8,
                ),
            ],
        ),
        (
            "Throughput",
            [
                (
                    "Blocks committed /s",
                    "ops",
                    [(f"rate(seqnet_blocks_committed_total{{{SELECT}}}{RATE})", per_node)],
                    6,
                ),
                (
                    "Transactions decrypted /s, by namespace",
                    "ops",
                    [
                        (
                            "max by (namespace) "
                            f"(rate(seqnet_transactions_decrypted_total{{{SELECT}}}{RATE}))",
                            "{{namespace}}",
                        ),
                        (
                            f"max(rate(seqnet_transactions_invalid_total{{{SELECT}}}{RATE}))",
                            "did not open",
                        ),
                    ],
                    6,
                ),
                (
                    "Admissions to the mempool /s, by result",
                    "ops",
                    [
                        (
                            "sum by (source, result) "
                            f"(rate(seqnet_admissions_total{{{SELECT}}}{RATE}))",
                            "{{source}} {{result}}",
                        )
                    ],
                    6,
                ),
                (
                    "Mempool transactions",
                    "none",
                    [(f"seqnet_mempool_transactions{{{SELECT}}}", per_node)],
                    6,
                ),
            ],
        ),
        (
            "Peers and messages",
            [
                (
                    "Connected validators (of n - 1) and peers",
                    "none",
                    [
                        (f"seqnet_connected_validators{{{SELECT}}}", f"validators {per_node}"),
                        (f"seqnet_connected_peers{{{SELECT}}}", f"all peers {per_node}"),
                    ],
                    6,
                ),
                (
                    "Rejected messages /s, by reason (protocol faults: count against a peer)",
                    "ops",
                    [_by_reason("seqnet_messages_rejected_total")],
                    6,
                ),
                (
                    "Ignored messages /s, by reason (busy, late, ahead: no fault)",
                    "ops",
                    [_by_reason("seqnet_messages_ignored_total")],
                    6,
                ),
                (
                    "Frames dropped /s (peer's queue full), by protocol",
                    "ops",
                    [
                        (
                            "sum by (validator, protocol) "
                            f"(rate(seqnet_messages_dropped_total{{{SELECT}}}{RATE}))",
                            "{{validator}} {{protocol}}",
                        )
                    ],
                    6,
                ),
            ],
        ),
    ]


def _by_sender(counter: str) -> tuple[str, str]:
    """Summed over the receiving validators: what each sender did, as the others saw it."""
    return (f"sum by (sender) (rate({counter}{{{SELECT}}}{RATE}))", "from {{sender}}")


def _by_reason(counter: str) -> tuple[str, str]:
    return (
        f"sum by (validator, protocol, reason) (rate({counter}{{{SELECT}}}{RATE})) > 0",
        "{{validator}} {{protocol}}/{{reason}}",
    )


def build(refresh_s: int) -> dict[str, Any]:
    """The dashboard's JSON model, refreshing every ``refresh_s`` (the scrape interval)."""
    with warnings.catch_warnings():  # the classic model's builder is marked deprecated in
        warnings.simplefilter("ignore", DeprecationWarning)  # favour of one Grafana 12 needs
        from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.common import (
        DataSourceRef,
        LegendDisplayMode,
        LegendPlacement,
        SortOrder,
        TooltipDisplayMode,
    )
    from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort

    source = DataSourceRef(type_val="prometheus", uid="${datasource}")
    board = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .description("Liveness, latency, throughput and peers of a seqnet validator committee")
        .tags(["seqnet"])
        .refresh(f"{refresh_s}s")
        .time("now-15m", "now")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .with_variable(
            dashboard.QueryVariable("validator")
            .label("Validator")
            .datasource(source)
            .query(f'label_values(up{{job="{JOB}"}}, validator)')
            .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(VariableSort.NATURAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    panel_id = 1
    board = board.with_row(dashboard.Row("Committee").id(panel_id))
    panel_id += 1
    board = board.with_panel(
        stat.Panel()
        .id(panel_id)
        .title("Validators up")
        .datasource(source)
        .height(4)
        .span(24)
        .with_target(
            prometheus.Dataquery()
            .expr(f'sum(up{{job="{JOB}"}})')
            .legend_format("up")
            .instant()
            .ref_id("A")
        )
    )
    for row_title, panels in _rows():
        panel_id += 1
        board = board.with_row(dashboard.Row(row_title).id(panel_id))
        for title, unit, queries, width in panels:
            panel_id += 1
            panel = (
                timeseries.Panel()
                .id(panel_id)
                .title(title)
                .datasource(source)
                .unit(unit)
                .height(8)
                .span(width)
                .legend(
                    common.VizLegendOptions()
                    .show_legend(True)
                    .display_mode(LegendDisplayMode.LIST)
                    .placement(LegendPlacement.BOTTOM)
                )
                .tooltip(
                    common.VizTooltipOptions()
                    .mode(TooltipDisplayMode.MULTI)
                    .sort(SortOrder.DESCENDING)
                )
            )
            for k, (expr, legend) in enumerate(queries):
                panel = panel.with_target(
                    prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(65 + k))
                )
            board = board.with_panel(panel)
    model: dict[str, Any] = json.loads(JSONEncoder().encode(board.build()))
    return model
