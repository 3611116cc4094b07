"""Human-readable summary of a sweep, and the command that replays a failure."""

from __future__ import annotations

from ops.sim.engine import RunResult
from ops.sim.runner import Summary, SweepConfig


def render(summary: Summary, config: SweepConfig) -> str:
    sizes = ", ".join(f"n={n}: {c}" for n, c in sorted(summary.by_size.items()))
    last = config.start_seed + config.seeds - 1
    lines = [
        f"runs              {summary.runs} ({sizes}), seeds {config.start_seed}..{last}",
        f"faults            {config.faults}; byzantine "
        f"{'f' if config.byzantine is None else config.byzantine}; crashed {config.crashed}",
        f"commits           {summary.commits} blocks (sum of the highest height per run)",
        f"timed-out rounds  {summary.rounds_timed_out} rounds ended by a timeout certificate",
        f"events            {summary.events}",
    ]
    q = summary.liveness_quantiles()
    if q is not None:
        lines.append(
            f"liveness          {config.target_commits} new commits on every honest node "
            f"{q[0] / 1000:.2f} s p50, {q[1] / 1000:.2f} s p99, {q[2] / 1000:.2f} s max after GST "
            f"(bound {config.liveness_bound_ms / 1000:.0f} s)"
        )
    lines.append(
        f"round gap         at most {summary.max_round_gap} rounds between consecutive "
        "commits (steady state after GST)"
    )
    if summary.attacks:
        attacks = ", ".join(f"{a} {c}" for a, c in sorted(summary.attacks.items()))
        lines.append(f"byzantine nodes   {attacks}")
    if summary.rejected:
        top = ", ".join(f"{r} {c}" for r, c in summary.rejected.most_common(8))
        lines.append(f"rejected inputs   {top}")
    lines.append(f"violations        {len(summary.failures)} failing runs")
    for result in summary.failures[:10]:
        lines.extend(_failure(result, config))
    return "\n".join(lines)


def _failure(result: RunResult, config: SweepConfig) -> list[str]:
    s = result.scenario
    replay = (
        f"seqnet sim --nodes {s.n} --start-seed {s.seed} --seeds 1 --faults {config.faults}"
        f" --byzantine {len(s.byzantine)} --crashed {config.crashed}"
    )
    head = f"FAILED seed {s.seed} n={s.n} byzantine={s.byzantine}: {result.violations[0]}"
    return [head, f"  replay: {replay}"]
