"""``alerts.yml``: Prometheus alerting rules for the failures a seqnet operator must act on.

Only series a validator exports today (``docs/metrics.md``) and Prometheus' own ``up``
appear here; a test checks every name. The quorum comes from the committee, so the
rule is right for any cluster size. ``for:`` durations count rule evaluations: a
blip of one scrape never pages anyone, and a test cluster scraped every second
alerts within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.health import MAX_DECRYPTION_LAG
from ops.monitoring.scrape import JOB

GROUP = "seqnet"
STALLED_AFTER_S = 30  # an idle leader still proposes at 4 Hz: 30 s without a commit is a stall
LATENCY_P99_BOUND_S = 1.5  # the p99 submit -> decrypted target of docs/benchmarks.md
LATENCY_WINDOW = "5m"
HEADER = (
    "# Alerting rules for this seqnet cluster, written by `seqnet cluster up` (rewritten on\n"
    "# every start). What each alert means and what to do: docs/monitoring.md.\n"
)
SELECT = f'job="{JOB}"'


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert: fires once ``expr`` has held for ``evaluations`` rule evaluations."""

    name: str
    expr: str
    evaluations: int
    severity: str  # critical: the chain stops or loses safety margin; warning: degraded
    summary: str
    description: str


def rules(*, n: int, quorum: int) -> list[Rule]:
    """The rules for a committee of ``n`` validators whose certificates need ``quorum``."""
    lag = f"(seqnet_height{{{SELECT}}} - seqnet_decrypted_height{{{SELECT}}})"
    p99 = (
        "histogram_quantile(0.99, sum by (validator, le) "
        f"(rate(seqnet_submit_to_decrypt_seconds_bucket{{{SELECT}}}[{LATENCY_WINDOW}])))"
    )
    bad_shares = f"seqnet_decryption_shares_invalid_total{{{SELECT}}}"
    return [
        Rule(
            "SeqnetQuorumLost",
            f"sum(up{{{SELECT}}}) < {quorum}",
            3,
            "critical",
            f"{{{{ $value }}}} of {n} validators up: below the quorum of {quorum}",
            f"Certificates need {quorum} of {n} validators; with fewer up the chain cannot "
            "commit or decrypt. Bring the down validators back (SeqnetValidatorDown names them).",
        ),
        Rule(
            "SeqnetValidatorDown",
            f"up{{{SELECT}}} == 0",
            6,
            "warning",
            "validator {{ $labels.validator }} is down ({{ $labels.instance }} not answering)",
            "Its /metrics does not answer: the process stopped or hangs. The chain goes on "
            f"while {quorum} of {n} are up. Read node-<i>.log, restart the node; it catches up "
            "from its peers.",
        ),
        Rule(
            "SeqnetChainStalled",
            f"time() - max(seqnet_last_commit_timestamp_seconds{{{SELECT}}}) > {STALLED_AFTER_S}",
            3,
            "critical",
            f"no validator has committed a block for over {STALLED_AFTER_S} s",
            "Consensus makes no progress although validators answer: check SeqnetQuorumLost, "
            "seqnet_connected_peers (a partition) and the rounds and timeouts on the dashboard.",
        ),
        Rule(
            "SeqnetSubmitToDecryptLatencyHigh",
            f"{p99} > {LATENCY_P99_BOUND_S}",
            12,
            "warning",
            "p99 submit -> decrypted latency at validator {{ $labels.validator }} is "
            f"{{{{ $value | humanizeDuration }}}} (bound {LATENCY_P99_BOUND_S} s)",
            f"Over the last {LATENCY_WINDOW}, transactions submitted at this validator took "
            "longer than the target to be decrypted. Compare submit->commit with "
            "commit->decrypt on the dashboard to see which half is slow; check load and CPU.",
        ),
        Rule(
            "SeqnetDecryptionBehind",
            f"{lag} > {MAX_DECRYPTION_LAG} or ({lag} > 0 and "
            f"changes(seqnet_decrypted_height{{{SELECT}}}[1m]) == 0)",
            12,
            "warning",
            "validator {{ $labels.validator }} decrypts {{ $value }} blocks behind its commits",
            f"Committed blocks wait for decryption: more than {MAX_DECRYPTION_LAG} behind (the "
            "bound of `seqnet cluster status`), or behind without progress for a minute. "
            "Decryption needs f+1 validators' shares: check SeqnetValidatorDown and the shares "
            "protocol's rejected and ignored messages.",
        ),
        Rule(
            "SeqnetInvalidDecryptionShares",
            f"count by (sender) (increase({bad_shares}[5m]) > 0)",
            1,
            "warning",
            "validator {{ $labels.sender }} sent invalid decryption shares "
            "(seen by {{ $value }} validators)",
            "Its share batches failed their proofs when others combined them: it is faulty "
            "or malicious (a wrong key share after a bad restore, or an attack). Decryption "
            "goes on while f+1 honest validators share; replace its key share or the node.",
        ),
    ]


def rule_file(rules: list[Rule], interval_s: int) -> dict[str, Any]:
    """The rule file: one group evaluated at ``interval_s``."""
    return {
        "groups": [
            {
                "name": GROUP,
                "interval": f"{interval_s}s",
                "rules": [_rule(r, interval_s) for r in rules],
            }
        ]
    }


def _rule(rule: Rule, interval_s: int) -> dict[str, Any]:
    return {
        "alert": rule.name,
        "expr": rule.expr,
        "for": f"{rule.evaluations * interval_s}s",
        "labels": {"severity": rule.severity},
        "annotations": {"summary": rule.summary, "description": rule.description},
    }
