"""Checkers over a recorded chaos history: pure functions, each a verdict with its evidence.

Like the simulator's checkers (``ops/sim/checkers.py``: agreement, no honest
double vote, liveness after GST), but over what real processes were seen to
do from outside. Each returns a :class:`Verdict`: ok or not, one summary
line, and evidence (heights, digests, times, nodes) so that a failure says
what happened, not just that something did.

- **agreement**: every node that serves a height serves the same committed
  block, the same batch (its digests in one order, certified or not) and
  the same certified batch header, and the rollup received that header; no
  node's committed height ever goes backwards (across restarts).
- **no loss**: every acknowledged transaction reached the rollup by the end
  of the drain. One acknowledged by a node that was SIGKILLed within
  ``AT_RISK_S`` after (``RESTART_AT_RISK_S`` when the whole committee was), or
  whose answer arrived while the kill was landing, is reported as *at risk*,
  not lost: a node holds admitted transactions in memory, as ``docs/node.md``
  says ("Accepted is not committed"). One acknowledged by a node while a
  partition or delay_loss dropped the frames it sent, and at the end still
  pending at that node and unknown to every other, is *stranded*, and fails
  the run like a lost one: validators offer a pending transaction again every
  second to peers whose reports do not list it, so none should be.
- **no duplicates**: no digest reaches the rollup at two heights or
  positions, and no node holds one twice.
- **liveness**: while a quorum is up, commits and deliveries never stop for
  longer than the bound; where fewer than a quorum are up the chain
  stalls (nothing new committed after a grace for messages in flight) and,
  after the heal, commits and deliveries resume within the bound; every
  healed node catches up by the end.
- **metrics**: ``/metrics`` agrees with the API: ``seqnet_height`` and
  ``seqnet_certified_height`` at the end are at least what ``/v1/status`` said
  just before, and a node that ran throughout counted in
  ``seqnet_transactions_decrypted_total`` exactly the transactions its
  batches hold, which are those the rollup received.
- **censorship** (with a ``censor`` fault): the censored namespace's
  transactions acknowledged during the fault reach the rollup within the bound.
- **blame** (with ``withhold_shares``, ``corrupt_shares`` or ``censor``): the
  honest nodes' metrics name the Byzantine validators and nobody else.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ops.chaos.history import BatchSeen, History, Scrape, Status, Submission, Window

AT_RISK_S = 1.0  # acknowledged this shortly before its node's SIGKILL: maybe never relayed
RESTART_AT_RISK_S = 3.0  # ... before every node's SIGKILL: maybe never committed
STALL_GRACE_S = 2.0  # commits in flight when a quorum is lost may still be seen this long
SHOWN = 5  # evidence lines per kind of problem
KILLING = ("kill", "restart_all")
LINK_KINDS = ("partition", "delay_loss")  # faults that drop frames a node sends
LINK_RISK_S = 0.2  # acknowledged this shortly before a link fault: its relay may be dropped
BLAME_GRACE_S = 1.0  # after a Byzantine fault starts, what was in flight has landed by then
MIN_SPAN_S = 0.5  # two scrapes at least this far apart inside a fault to judge a counter
CENSOR, WITHHOLD, CORRUPT = "censor", "withhold_shares", "corrupt_shares"
BLAMED = (WITHHOLD, CORRUPT, CENSOR)  # behaviours the honest nodes' metrics must name


@dataclass(frozen=True, slots=True)
class Verdict:
    """One checker's judgement: ok, a summary line, evidence lines and figures for the report."""

    checker: str
    ok: bool
    summary: str
    evidence: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)


def check_all(history: History) -> list[Verdict]:
    """Every checker, in the order the report shows them (the last two only for a run
    with Byzantine faults they judge)."""
    out = [
        agreement(history),
        no_loss(history),
        no_duplicates(history),
        liveness(history),
        metrics_agree(history),
    ]
    if any(w.behaviour == CENSOR for w in history.windows):
        out.append(censorship(history))
    if any(w.behaviour in BLAMED for w in history.windows):
        out.append(blame(history))
    return out


def short(digest: str) -> str:
    return digest[:12]


# ------------------------------------------------------------ agreement


def agreement(h: History) -> Verdict:
    """One block, one batch (its transactions in one order) and one certified header per
    height, on every node and at the rollup; no committed height going back."""
    blocks: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    headers: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    contents: dict[int, dict[tuple[str, ...], set[int]]] = defaultdict(lambda: defaultdict(set))
    for b in h.batches:
        if b.height >= h.start_height:
            blocks[b.height][b.block_hash].add(b.node)
            contents[b.height][b.digests].add(b.node)
            if b.batch_hash is not None:
                headers[b.height][b.batch_hash].add(b.node)
    problems: list[str] = []
    odd: Counter[int] = Counter()  # per node: heights where it served a batch of its own
    for height in sorted(blocks):
        if len(blocks[height]) > 1 or len(headers[height]) > 1:
            problems.append(f"fork at height {height}: {_fork(h, height)}")
        elif len(contents[height]) > 1:
            line = _batches_differ(height, next(iter(blocks[height])), contents[height])
            problems.append(line + _chain_at(h, height))
        if len(contents[height]) > 1:
            versions = sorted(
                contents[height].values(), key=lambda nodes: (-len(nodes), min(nodes))
            )
            odd.update(node for nodes in versions[1:] for node in nodes)
    rollup = 0
    for d in h.deliveries:
        served = set(headers.get(d.height, {}))
        if served and d.batch_hash not in served:
            problems.append(
                f"the rollup verified header {short(d.batch_hash)} at height {d.height} "
                f"({d.namespace}), the nodes serve {', '.join(short(x) for x in sorted(served))}"
            )
        rollup += bool(served)
    problems += _heights_going_back(h.statuses)
    reports = sum(len(nodes) for versions in blocks.values() for nodes in versions.values())
    span = f"heights {min(blocks)}-{max(blocks)}" if blocks else "no heights"
    summary = (
        f"{len(blocks)} {span}: {reports} reports from {len({b.node for b in h.batches})} nodes "
        f"and {rollup} rollup batches compared"
    )
    if odd:
        who = ", ".join(f"node {node} at {count}" for node, count in sorted(odd.items()))
        summary += f"; batches of their own: {who} height(s)"
    if not problems:
        summary += "; one block, one batch and one batch header per height"
    figures = {
        "heights": len(blocks),
        "reports": reports,
        "forks": len(problems),
        "odd_nodes": {str(node): count for node, count in sorted(odd.items())},
    }
    return Verdict("agreement", not problems, summary, _shown(problems), figures)


def _fork(h: History, height: int) -> str:
    """Who served which block and header at a height with more than one."""
    versions: dict[tuple[str, str | None], set[int]] = defaultdict(set)
    for b in h.batches:
        if b.height == height:
            versions[(b.block_hash, b.batch_hash)].add(b.node)
    merged: dict[tuple[str, str | None], set[int]] = defaultdict(set)
    for (block, header), nodes in versions.items():
        known = [k for k in versions if k[0] == block and k[1] is not None]
        if header is None and len(known) == 1:  # not certified there: same as its block's
            merged[known[0]] |= nodes
        else:
            merged[(block, header)] |= nodes
    return "; ".join(
        f"node {_nodes(nodes)}: block {short(block)} header {short(header or '-')}"
        for (block, header), nodes in sorted(merged.items(), key=lambda kv: min(kv[1]))
    )


def _batches_differ(height: int, block: str, versions: dict[tuple[str, ...], set[int]]) -> str:
    """One block, more than one batch: who served which transactions, and where they part."""
    ordered = sorted(versions.items(), key=lambda kv: (-len(kv[1]), min(kv[1])))
    (majority, _), *_ = ordered
    told = []
    for digests, nodes in ordered:
        shown = ", ".join(short(d) for d in digests[:3]) + (", ..." if len(digests) > 3 else "")
        line = f"node {_nodes(nodes)}: {len(digests)} transactions [{shown}]"
        if digests is not majority:
            line += _how_differs(majority, digests)
        told.append(line)
    return f"batches differ at height {height} (one committed block {short(block)}): " + "; ".join(
        told
    )


def _chain_at(h: History, height: int) -> str:
    """What ``/v1/blocks/{h}`` said at a height where the batches differ, if it was read."""
    chain: dict[str, set[int]] = defaultdict(set)
    for b in h.blocks:
        if b.height == height:
            chain[b.block_hash].add(b.node)
    if not chain:
        return ""
    if len(chain) == 1:
        ((block, nodes),) = chain.items()
        where = f"/v1/blocks/{height} is {short(block)} on node {_nodes(nodes)}"
        return f"; the chain agrees: {where}"
    told = "; ".join(f"node {_nodes(n)}: {short(b)}" for b, n in sorted(chain.items()))
    return f"; /v1/blocks/{height} differs too: {told}"


def _how_differs(majority: tuple[str, ...], digests: tuple[str, ...]) -> str:
    if sorted(majority) != sorted(digests):
        return " (other transactions)"
    first = next(k for k, (a, b) in enumerate(zip(majority, digests, strict=True)) if a != b)
    how = "reversed" if digests == majority[::-1] else "reordered"
    return f" ({how}: the same transactions, first apart at position {first})"


def _heights_going_back(statuses: Iterable[Status]) -> list[str]:
    """A node whose committed height fell: it lost committed blocks (across a restart)."""
    best: dict[int, Status] = {}
    out = []
    for s in sorted(statuses, key=lambda s: s.t):
        if not s.committing or s.height is None:
            continue
        before = best.get(s.node)
        if before is not None and before.height is not None and s.height < before.height:
            out.append(
                f"node {s.node}'s committed height fell from {before.height} "
                f"({before.t:.1f} s) to {s.height} ({s.t:.1f} s)"
            )
        if before is None or (before.height or 0) <= s.height:
            best[s.node] = s
    return out


# ------------------------------------------------------------ no loss


def no_loss(h: History) -> Verdict:
    """Every acknowledged digest delivered to the rollup by the end (at-risk ones apart;
    stranded ones are told apart from other losses, and fail the run too)."""
    delivered = first_deliveries(h)
    acked = [s for s in h.submissions if s.acked is not None]
    missing = [s for s in acked if s.digest not in delivered]
    held = held_at(h)
    risky, stranded, lost = [], [], []
    for s in missing:
        if at_risk(s, h.windows, h.n) is not None:
            risky.append(s)
        elif stranded_by(s, h.windows, held) is not None:
            stranded.append(s)
        else:
            lost.append(s)
    holders = _holders(h.batches)
    problems = [
        f"lost {short(s.digest)} ({s.namespace}): acknowledged by node {s.node} at "
        f"{s.acked:.2f} s; {_where(s.digest, holders, held.get(s.digest))}"
        for s in lost
        if s.acked is not None
    ]
    notes = [
        f"at risk {short(s.digest)}: acknowledged by node {s.node} at {s.acked:.2f} s, "
        f"{at_risk(s, h.windows, h.n)}"
        for s in risky
        if s.acked is not None
    ]
    notes += [
        f"stranded {short(s.digest)}: acknowledged by node {s.node} at {s.acked:.2f} s "
        f"{stranded_by(s, h.windows, held)}; at the end still pending in its mempool only"
        for s in stranded
        if s.acked is not None
    ]
    unacked = [s for s in h.submissions if s.acked is None]
    came = sum(s.digest in delivered for s in unacked)
    ours = {s.digest for s in h.submissions}
    foreign = sum(d not in ours for d in delivered)
    summary = f"{len(acked)} acknowledged, {len(acked) - len(missing)} delivered, {len(lost)} lost"
    if risky:
        summary += f", {len(risky)} at risk (acknowledged just before their node was killed)"
    if stranded:
        summary += (
            f", {len(stranded)} stranded (acknowledged by a node while a link fault dropped "
            "its relay; still pending in that node's mempool only: it never reached the "
            "others, though it should have been offered to them again)"
        )
    summary += f"; {len(unacked)} unacknowledged (no node answered; {came} delivered anyway)"
    if foreign:
        summary += f"; {foreign} delivered that this run did not submit"
    figures = {
        "acknowledged": len(acked),
        "delivered": len(acked) - len(missing),
        "lost": len(lost),
        "at_risk": len(risky),
        "stranded": len(stranded),
        "unacknowledged": len(unacked),
    }
    evidence = _shown(problems) + _shown(notes[: len(risky)]) + _shown(notes[len(risky) :])
    return Verdict("no loss", not lost and not stranded, summary, evidence, figures)


def held_at(h: History) -> dict[str, dict[int, str]]:
    """Per undelivered digest located at the end: each node's status for it."""
    out: dict[str, dict[int, str]] = defaultdict(dict)
    for x in h.held:
        out[x.digest][x.node] = x.status
    return dict(out)


def link_risk(s: Submission, windows: Sequence[Window]) -> str | None:
    """Why a transaction may never have left the node that acknowledged it: a partition
    cut that node off, or its outgoing links dropped frames, when it was acknowledged (a
    relay leaves within 5 ms and is not sent again)."""
    if s.acked is None:
        return None
    for w in windows:
        linked = w.kind in LINK_KINDS and s.node in w.nodes
        if linked and w.start - LINK_RISK_S <= s.acked < w.end:
            return f"while fault {w.index} ({w.kind}) held its links"
    return None


def stranded_by(
    s: Submission, windows: Sequence[Window], held: dict[str, dict[int, str]]
) -> str | None:
    """Why an undelivered transaction is stranded, not lost: acknowledged under a link
    fault (:func:`link_risk`) and, at the end, pending at the node that acknowledged it
    and unknown to every other node."""
    where = held.get(s.digest)
    why = link_risk(s, windows)
    if why is None or not where or s.node is None or where.get(s.node) != "pending":
        return None
    if any(status != "unknown" for node, status in where.items() if node != s.node):
        return None
    return why


def first_deliveries(h: History) -> dict[str, float]:
    """When each digest first reached the rollup."""
    out: dict[str, float] = {}
    for d in sorted(h.deliveries, key=lambda d: d.t):
        for digest in d.digests:
            out.setdefault(digest, d.t)
    return out


def at_risk(s: Submission, windows: Sequence[Window], n: int) -> str | None:
    """Why an undelivered acknowledged transaction may be excused, or None if it may not."""
    if s.acked is None:
        return None
    for w in windows:
        if w.kind not in KILLING or s.node not in w.nodes:
            continue
        lead = w.start - s.acked
        limit = RESTART_AT_RISK_S if len(w.nodes) == n else AT_RISK_S
        if 0 <= lead <= limit:
            return f"{lead:.2f} s before fault {w.index} ({w.kind}) killed it"
        if w.start <= s.acked < w.end:  # the answer left before the SIGKILL landed
            return f"as fault {w.index} ({w.kind}) was killing it"
    return None


def _holders(batches: Iterable[BatchSeen]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for b in batches:
        for _, digest, _ in b.txs:
            out[digest].append((b.node, b.height))
    return out


def _where(
    digest: str, holders: dict[str, list[tuple[int, int]]], held: dict[int, str] | None = None
) -> str:
    found = holders.get(digest)
    if not found:
        told = ""
        if held:
            told = "; at the end " + ", ".join(f"{v} at node {n}" for n, v in sorted(held.items()))
        return "in no node's decrypted batches" + told
    node, height = found[0]
    return f"in node {node}'s batch at height {height}, never delivered to the rollup"


# ------------------------------------------------------------ no duplicates


def no_duplicates(h: History) -> Verdict:
    """No digest at two heights or positions, at the rollup or on any node."""
    problems = []
    places: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
    for d in h.deliveries:
        for position, digest in enumerate(d.digests):
            places[digest].add((d.namespace, d.height, position))
    for digest, where in sorted(places.items()):
        if len(where) > 1:
            at = ", ".join(f"height {ht} position {p} ({ns})" for ns, ht, p in sorted(where))
            problems.append(f"the rollup received {short(digest)} twice: {at}")
    held: dict[tuple[int, str], set[tuple[int, int]]] = defaultdict(set)
    for b in h.batches:
        for position, (_, digest, _) in enumerate(b.txs):
            held[(b.node, digest)].add((b.height, position))
    for (node, digest), spots in sorted(held.items()):
        if len(spots) > 1:
            at = ", ".join(f"height {ht} position {p}" for ht, p in sorted(spots))
            problems.append(f"node {node} ordered {short(digest)} twice: {at}")
    summary = (
        f"{len(places)} digests delivered to the rollup, {len({d for _, d in held})} in the "
        f"nodes' batches; {len(problems)} ordered twice"
    )
    return Verdict(
        "no duplicates", not problems, summary, _shown(problems), {"dups": len(problems)}
    )


# ------------------------------------------------------------ liveness


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch of the run with the same nodes down."""

    start: float
    end: float
    down: frozenset[int]


def pieces(windows: Sequence[Window], start: float, end: float) -> list[Piece]:
    """[start, end] cut wherever a fault starts or heals, with who is down in each piece."""
    cuts = sorted({start, end, *(t for w in windows for t in (w.start, w.end) if start < t < end)})
    out = []
    for a, b in itertools.pairwise(cuts):
        down = frozenset(node for w in windows if w.holds(a) for node in w.down)
        out.append(Piece(a, b, down))
    return out


def periods(ps: Sequence[Piece], keep: bool, spare: int) -> list[tuple[float, float, int]]:
    """Maximal runs of pieces with a quorum up (``keep``) or lost (not ``keep``), most down.

    ``spare``: how many nodes may be down with a quorum still up (n - quorum; f for 3f+1).
    """
    out: list[tuple[float, float, int]] = []
    for p in ps:
        if (len(p.down) <= spare) != keep:
            continue
        if out and math.isclose(out[-1][1], p.start):
            a, _, most = out[-1]
            out[-1] = (a, p.end, max(most, len(p.down)))
        else:
            out.append((p.start, p.end, len(p.down)))
    return out


class Progress:
    """When the highest height first rose: commits seen at any node, or heights delivered."""

    def __init__(self, events: Iterable[tuple[float, int]]) -> None:
        self.times: list[float] = []
        self.heights: list[int] = []
        for t, height in sorted(events):
            if not self.heights or height > self.heights[-1]:
                self.times.append(t)
                self.heights.append(height)

    def height_at(self, t: float) -> int:
        k = bisect.bisect_right(self.times, t)
        return self.heights[k - 1] if k else 0

    def first_above(self, height: int, after: float) -> float | None:
        """When a height above ``height`` was first seen after ``after``."""
        k = bisect.bisect_right(self.heights, height)
        for t in self.times[k:]:
            if t > after:
                return t
        return None

    def last_at_or_before(self, t: float) -> float | None:
        k = bisect.bisect_right(self.times, t)
        return self.times[k - 1] if k else None

    def longest_gap(self, a: float, b: float) -> tuple[float, float, float]:
        """(gap, from, to): the longest stretch of [a, b] with no rise."""
        marks = [a, *(t for t in self.times if a < t < b), b]
        return max(((y - x, x, y) for x, y in itertools.pairwise(marks)), default=(0.0, a, b))


def commit_progress(h: History) -> Progress:
    return Progress((s.t, s.height) for s in h.statuses if s.committing and s.height is not None)


def delivery_progress(h: History) -> Progress:
    return Progress((d.t, d.height) for d in h.deliveries)


def liveness(h: History) -> Verdict:
    """Live while a quorum is up; stalled without commits while not; back within the bound."""
    bound = h.liveness_bound_s
    commits, deliveries = commit_progress(h), delivery_progress(h)
    ps = pieces(h.windows, 0.0, h.load_end)
    spare = h.n - h.quorum
    problems: list[str] = []
    for a, b, most in periods(ps, True, spare):
        for what, progress in (("commit", commits), ("delivery", deliveries)):
            gap, x, y = progress.longest_gap(a, b)
            if gap > bound:
                problems.append(
                    f"no {what} from {x:.1f} s to {y:.1f} s ({gap:.1f} s, bound {bound:g} s) "
                    f"with {h.n - most} or more of {h.n} nodes up"
                )
    for a, b, most in periods(ps, False, spare):
        problems += _committed_without_quorum(h, commits, a, b, most)
    figures = [window_figures(h, w, commits, deliveries) for w in h.windows]
    for fig in figures:
        problems += fig.pop("problems")
    summary = "; ".join(_window_line(fig) for fig in figures) or "no faults"
    gaps = [commits.longest_gap(a, b)[0] for a, b, _ in periods(ps, True, spare)]
    extra = {"max_commit_gap_s": max(gaps, default=0.0), "windows": figures}
    why = tuple(_failed_rounds(h)) if problems else ()
    return Verdict("liveness", not problems, summary, _shown(problems) + why, extra)


def _failed_rounds(h: History) -> list[str]:
    """Each node's failed rounds over the run by cause, to tell why it was not live."""
    out = []
    for node in range(h.n):
        mine = sorted((s for s in h.scrapes if s.node == node), key=lambda s: s.t)
        if len(mine) < 2:
            continue
        first, last = mine[0].failure_causes, mine[-1].failure_causes
        grew = {c: last[c] - first.get(c, 0.0) for c in sorted(last) if last[c] > first.get(c, 0)}
        if grew:
            told = ", ".join(f"{cause} {count:.0f}" for cause, count in grew.items())
            out.append(f"node {node}: rounds failed over the run, by cause: {told}")
    return out


def _committed_without_quorum(
    h: History, commits: Progress, a: float, b: float, most: int
) -> list[str]:
    """Heights committed while fewer than a quorum were up, past the grace for in-flight ones."""
    if b - a <= STALL_GRACE_S:
        return []
    ceiling = commits.height_at(a + STALL_GRACE_S)
    for s in sorted(h.statuses, key=lambda s: s.t):
        if a + STALL_GRACE_S < s.t < b and s.committing and (s.height or 0) > ceiling:
            return [
                f"node {s.node} reported height {s.height} at {s.t:.1f} s, above the "
                f"{ceiling} reached by {a + STALL_GRACE_S:.1f} s, while {most} of {h.n} nodes "
                f"were down (quorum {h.quorum}): a commit without a quorum"
            ]
    return []


def window_figures(
    h: History, w: Window, commits: Progress, deliveries: Progress
) -> dict[str, Any]:
    """Per fault: stall or longest gap, recovery of commits and deliveries, nodes' rejoin."""
    bound = h.liveness_bound_s
    inside = pieces(h.windows, w.start, w.end)
    most = max((len(p.down) for p in inside), default=len(w.down))
    stall = most > h.n - h.quorum
    at_heal = commits.height_at(w.end)
    resumed = commits.first_above(at_heal, w.end)
    delivered = deliveries.first_above(at_heal, w.end)
    fig: dict[str, Any] = {
        "index": w.index,
        "kind": w.kind,
        "targets": w.targets,
        "detail": w.detail,
        "nodes": list(w.nodes),
        "start": w.start,
        "end": w.end,
        "down": most,
        "expected": "stall" if stall else "live",
        "commit_recovery_s": None if resumed is None else resumed - w.end,
        "delivery_recovery_s": None if delivered is None else delivered - w.end,
        "problems": [],
    }
    problems: list[str] = fig["problems"]
    if stall:
        last = commits.last_at_or_before(w.end)
        fig["stall_s"] = None if resumed is None or last is None else resumed - last
    else:
        fig["max_commit_gap_s"] = commits.longest_gap(w.start, w.end)[0]
    for what, when in (("commits", resumed), ("deliveries", delivered)):
        if when is None:
            problems.append(
                f"fault {w.index} ({w.kind} {_nodes(w.nodes)}): {what} did not resume after "
                f"the heal at {w.end:.1f} s (height {at_heal}) by the end at {h.end:.1f} s"
            )
        elif when - w.end > bound:
            problems.append(
                f"fault {w.index} ({w.kind} {_nodes(w.nodes)}): {what} resumed "
                f"{when - w.end:.1f} s after the heal at {w.end:.1f} s, bound {bound:g} s"
            )
    rejoin: dict[int, float | None] = {}
    for node in w.nodes:
        back = next(
            (
                s.t
                for s in sorted(h.statuses, key=lambda s: s.t)
                if s.node == node and s.t >= w.end and s.committing and (s.height or 0) >= at_heal
            ),
            None,
        )
        rejoin[node] = None if back is None else back - w.end
        if back is None:
            problems.append(
                f"fault {w.index}: node {node} never reached height {at_heal} (the height at "
                f"its heal, {w.end:.1f} s) by the end at {h.end:.1f} s"
            )
    done = [r for r in rejoin.values() if r is not None]
    fig["rejoin_s"] = max(done) if len(done) == len(rejoin) and done else None
    return fig


def _window_line(fig: dict[str, Any]) -> str:
    head = (
        f"fault {fig['index']} {fig['kind']} {_nodes(fig['nodes'])} "
        f"{fig['start']:.1f}-{fig['end']:.1f} s"
    )
    if fig["expected"] == "stall":
        body = f"stalled {_secs(fig.get('stall_s'))} ({fig['down']} down)"
    else:
        body = f"longest commit gap {_secs(fig.get('max_commit_gap_s'))}"
    commits, deliveries = _secs(fig["commit_recovery_s"]), _secs(fig["delivery_recovery_s"])
    return (
        f"{head}: {body}, commits resumed {commits} and deliveries {deliveries} after the "
        f"heal, nodes back in {_secs(fig['rejoin_s'])}"
    )


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


# ------------------------------------------------------------ metrics


def metrics_agree(h: History) -> Verdict:
    """``/metrics`` against ``/v1/status``, the nodes' batches and the rollup's deliveries."""
    first: dict[int, Any] = {}
    last: dict[int, Any] = {}
    for s in sorted(h.scrapes, key=lambda s: s.t):
        first.setdefault(s.node, s)
        last[s.node] = s
    problems, notes = [], []
    compared = 0
    for node, status in sorted(h.final.items()):
        scrape = last.get(node)
        if scrape is None or not status.committing:
            notes.append(f"node {node}: not compared (no answer at the end)")
            continue
        compared += 1
        for series, metric, api in (
            ("seqnet_height", scrape.height, status.height),
            ("seqnet_certified_height", scrape.certified, status.certified),
        ):
            if metric is None or api is None or metric < api:
                problems.append(
                    f"node {node}: {series} {metric} at {scrape.t:.1f} s is below the "
                    f"{api} its /v1/status gave at {status.t:.1f} s"
                )
    faulted = {node for w in h.windows for node in w.down}  # killed, paused or cut off
    throughout = [i for i in sorted(h.final) if i not in faulted]
    exact = []
    for node in throughout:
        line, is_exact, problem = _counter(h, node, first.get(node), last.get(node))
        (problems if problem else notes).append(line)
        if is_exact:
            exact.append(node)
    if throughout and not exact and not problems:
        problems.append(
            f"no node that ran throughout ({_nodes(throughout)}) counted exactly the "
            "transactions its batches hold"
        )
    if not throughout:
        notes.append(
            "decrypted counters not compared: every node was faulted (a restarted node's "
            "counters start from zero)"
        )
    summary = f"seqnet_height and seqnet_certified_height checked on {compared} of {h.n} nodes"
    if exact:
        summary += f"; decrypted counters match the batches and the rollup on node {_nodes(exact)}"
    if problems:
        summary += f"; {len(problems)} disagreement(s)"
    figures = {"compared": compared, "exact_counters": exact}
    return Verdict("metrics", not problems, summary, _shown(problems) + tuple(notes), figures)


def _counter(h: History, node: int, first: Any, last: Any) -> tuple[str, bool, bool]:
    """(line, exact, is a problem) for one node's decrypted counter over the run."""
    base, final = h.baseline.get(node), h.final.get(node)
    if first is None or last is None or base is None or final is None:
        return f"node {node}: counter not compared (no scrape or status)", False, False
    lo, hi = (base.decrypted or 0) + 1, max(final.decrypted or 0, final.certified or 0)
    batches = {b.height: b for b in h.batches if b.node == node and lo <= b.height <= hi}
    if len(batches) != hi - lo + 1:
        return f"node {node}: counter not compared (heights {lo}-{hi} not all read)", False, False
    stored = Counter(ns for b in batches.values() for ns, _, ok in b.txs if ok)
    counted = {
        ns: last.decrypted.get(ns, 0.0) - first.decrypted.get(ns, 0.0)
        for ns in set(last.decrypted) | set(first.decrypted) | set(stored)
    }
    over = {ns: c for ns, c in counted.items() if c > stored.get(ns, 0)}
    total, held = sum(counted.values()), sum(stored.values())
    if over:
        ns = sorted(over)[0]
        return (
            f"node {node}: seqnet_transactions_decrypted_total{{namespace={ns!r}}} grew by "
            f"{counted[ns]:.0f}, but its batches at heights {lo}-{hi} hold {stored.get(ns, 0)}",
            False,
            True,
        )
    delivered = {digest for d in h.deliveries if lo <= d.height <= hi for digest in d.digests}
    mine = {digest for b in batches.values() for _, digest, _ in b.txs}
    if total == held and mine != delivered and _delivered_through(h) >= hi:
        return (
            f"node {node}: its batches at heights {lo}-{hi} hold {held} transactions, the "
            f"rollup received {len(delivered)} there",
            False,
            True,
        )
    how = "exact" if total == held else "fewer: it caught up some heights by sync"
    return (
        f"node {node}: counter grew by {total:.0f}, its batches at heights {lo}-{hi} hold "
        f"{held} ({how})",
        total == held,
        False,
    )


def _delivered_through(h: History) -> int:
    """The height up to which the rollup received every namespace."""
    top: dict[str, int] = {}
    for d in h.deliveries:
        top[d.namespace] = max(top.get(d.namespace, 0), d.height)
    return min(top.values(), default=0) if set(top) >= set(h.namespaces) else 0


# ------------------------------------------------------------ Byzantine faults


def censorship(h: History) -> Verdict:
    """While a leader censors a namespace, that namespace is still delivered within the bound.

    Every transaction of the censored namespace acknowledged during the fault
    must reach the rollup within ``liveness_bound_s`` of its acknowledgement:
    the honest leaders order what the censor leaves out.
    """
    bound = h.liveness_bound_s
    delivered = first_deliveries(h)
    problems: list[str] = []
    lines, figures = [], []
    for w in (w for w in h.windows if w.behaviour == CENSOR):
        during = [s for s in h.submissions if s.acked is not None and w.holds(s.sent)]
        waited = {
            s.digest: delivered[s.digest] - (s.sent if s.acked is None else s.acked)
            for s in during
            if s.digest in delivered
        }
        mine = [s for s in during if s.namespace == w.namespace]
        ours = [waited[s.digest] for s in mine if s.digest in waited]
        rest = [
            waited[s.digest] for s in during if s.namespace != w.namespace and s.digest in waited
        ]
        head = f"fault {w.index} (censor {w.namespace} by node {_nodes(w.nodes)})"
        late = [s for s in mine if waited.get(s.digest, math.inf) > bound]
        for s in late:
            took = waited.get(s.digest)
            when = "never delivered" if took is None else f"delivered {took:.1f} s later"
            problems.append(
                f"{head}: {short(s.digest)} acknowledged by node {s.node} at {s.acked:.2f} s, "
                f"{when}, bound {bound:g} s"
            )
        if not mine:
            problems.append(
                f"{head}: no {w.namespace} transaction acknowledged during it: nothing to judge"
            )
        p50, p99 = percentile(ours, 50), percentile(ours, 99)
        o50, o99 = percentile(rest, 50), percentile(rest, 99)
        figures.append({
            "index": w.index, "namespace": w.namespace, "censors": list(w.nodes),
            "acknowledged": len(mine), "within_bound": len(mine) - len(late),
            "p50_s": p50, "p99_s": p99, "others_p50_s": o50, "others_p99_s": o99,
        })  # fmt: skip
        lines.append(
            f"{head} {w.start:.1f}-{w.end:.1f} s: {len(mine)} {w.namespace} transactions "
            f"acknowledged, {len(mine) - len(late)} delivered within {bound:g} s of it "
            f"(p50/p99 {_secs(p50)}/{_secs(p99)}; other namespaces {_secs(o50)}/{_secs(o99)})"
        )
    return Verdict(
        "censorship", not problems, "; ".join(lines), _shown(problems), {"windows": figures}
    )


@dataclass
class _Blame:
    """What one check of the ``blame`` checker found."""

    line: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def blame(h: History) -> Verdict:
    """The honest validators' metrics name the Byzantine ones, and nobody else.

    - ``withhold_shares``: on every honest node, from ``BLAME_GRACE_S`` after the
      fault starts until its heal, ``seqnet_decryption_shares_received_total``
      does not grow for the withholding senders, and stops for no honest sender
      whose decrypted height rose meanwhile (one stuck behind sends nothing new).
    - ``corrupt_shares``: over the run, ``seqnet_decryption_shares_invalid_total``
      on the honest nodes names the corrupting senders and no other. A bad
      share is caught only when a node happens to combine with it, which under
      load happens within a few blocks of the fault.
    - ``censor``: ``seqnet_round_failures_total`` on the honest nodes grows for
      the censoring leader during the fault (its blocks are refused).
    """
    found: list[_Blame] = []
    for w in (w for w in h.windows if w.behaviour in (WITHHOLD, CENSOR)):
        honest = [i for i in range(h.n) if i not in _byzantine_during(h, w)]
        found.append((_withheld if w.behaviour == WITHHOLD else _censor_named)(h, w, honest))
    corrupting = {n for w in h.windows if w.behaviour == CORRUPT for n in w.nodes}
    if corrupting:
        found.append(_invalid_named(h, corrupting))
    problems = [p for b in found for p in b.problems]
    notes = [n for b in found for n in b.notes]
    figures = {"checks": [b.figures for b in found]}
    summary = "; ".join(b.line for b in found)
    return Verdict("blame", not problems, summary, _shown(problems) + tuple(notes), figures)


def _byzantine_during(h: History, w: Window) -> set[int]:
    return {
        n
        for o in h.windows
        if o.kind == "byzantine" and o.start < w.end and w.start < o.end
        for n in o.nodes
    }


def _span(h: History, node: int, w: Window) -> tuple[Scrape, Scrape] | None:
    """The first scrape of ``node`` from the grace after ``w`` started and the last before
    its heal, if far enough apart to judge a counter by."""
    inside = [s for s in h.scrapes if s.node == node and w.start + BLAME_GRACE_S <= s.t < w.end]
    if len(inside) < 2 or inside[-1].t - inside[0].t < MIN_SPAN_S:
        return None
    return inside[0], inside[-1]


def _grew(first: dict[str, float], last: dict[str, float], key: int) -> float:
    return last.get(str(key), 0.0) - first.get(str(key), 0.0)


def _withheld(h: History, w: Window, honest: list[int]) -> _Blame:
    """Every honest node's share counter stopped for the withholding senders, and for no
    honest sender that was decrypting (one stuck behind sends no new shares: excused)."""
    head = f"fault {w.index} ({w.behaviour} node {_nodes(w.nodes)})"
    out = _Blame()
    judged = []
    for node in honest:
        span = _span(h, node, w)
        if span is None:
            out.notes.append(f"{head}: node {node} not judged (no two scrapes during the fault)")
            continue
        first, last = span
        grew = {s: _grew(first.shares, last.shares, s) for s in range(h.n) if s != node}
        told = ", ".join(f"{g:.0f} from node {s}" for s, g in grew.items())
        when = f"({first.t:.1f}-{last.t:.1f} s)"
        if not any(g > 0 for s, g in grew.items() if s not in w.nodes):
            out.notes.append(f"{head}: node {node} not judged: no share batch from anyone {when}")
            continue
        judged.append(node)
        out.notes.append(f"{head}: node {node} received share batches {told} {when}")
        sending = [s for s, g in grew.items() if g > 0 and s in w.nodes]
        accused = [
            s
            for s, g in grew.items()
            if g <= 0 and s not in w.nodes and _decrypting(h, s, first.t, last.t)
        ]
        if sending or accused:
            out.problems.append(
                f"{head}: node {node}'s seqnet_decryption_shares_received_total "
                + (f"grew for the withholding node(s) {_nodes(sending)}" if sending else "")
                + (" and " if sending and accused else "")
                + (f"stopped for node(s) {_nodes(accused)}, which kept decrypting" if accused
                   else "")
                + f": {told} {when}"
            )  # fmt: skip
    if not judged:
        out.problems.append(f"{head}: no honest node received share batches it could judge by")
    named = "named" if judged and not out.problems else "NOT named"
    out.line = f"{head}: {named} by the share counters of node {_nodes(judged) or '-'}"
    out.figures = {"index": w.index, "behaviour": w.behaviour, "nodes": list(w.nodes),
                   "judged_by": judged}  # fmt: skip
    return out


def _decrypting(h: History, node: int, a: float, b: float) -> bool:
    """Whether ``node``'s decrypted height rose from ``a`` to ``b`` (it had shares to send);
    True when its statuses do not tell."""
    seen = [s.decrypted for s in h.statuses
            if s.node == node and a <= s.t <= b and s.decrypted is not None]  # fmt: skip
    return len(seen) < 2 or seen[-1] > seen[0]


def _censor_named(h: History, w: Window, honest: list[int]) -> _Blame:
    head = f"fault {w.index} ({w.behaviour} node {_nodes(w.nodes)})"
    out = _Blame()
    failures: Counter[int] = Counter()
    judged = []
    for node in honest:
        span = _span(h, node, w)
        if span is not None:
            first, last = span
            judged.append(node)
            for leader in range(h.n):
                failures[leader] += int(_grew(first.round_failures, last.round_failures, leader))
    told = ", ".join(f"{failures[leader]} led by node {leader}" for leader in range(h.n))
    if not judged:
        out.problems.append(f"{head}: no honest node scraped twice during the fault")
    elif not all(failures[c] > 0 for c in w.nodes):
        out.problems.append(
            f"{head}: the honest nodes' seqnet_round_failures_total did not grow for the "
            f"censoring leader(s) during the fault ({told})"
        )
    named = "named" if judged and not out.problems else "NOT named"
    out.line = f"{head}: {named} in the failed rounds node {_nodes(judged) or '-'} saw ({told})"
    out.figures = {"index": w.index, "behaviour": w.behaviour, "nodes": list(w.nodes),
                   "judged_by": judged,
                   "round_failures": {str(k): failures[k] for k in range(h.n)}}  # fmt: skip
    return out


def _invalid_named(h: History, corrupting: set[int]) -> _Blame:
    """Over the run, the invalid-share counters of the nodes that were never Byzantine."""
    out = _Blame()
    byzantine = {n for w in h.windows if w.kind == "byzantine" for n in w.nodes}
    counted: Counter[int] = Counter()
    for node in (i for i in range(h.n) if i not in byzantine):
        mine = sorted((s for s in h.scrapes if s.node == node), key=lambda s: s.t)
        if len(mine) >= 2:
            for sender in range(h.n):
                grew = _grew(mine[0].invalid_shares, mine[-1].invalid_shares, sender)
                counted[sender] += int(grew)
    named = sorted(s for s, c in counted.items() if c > 0)
    told = ", ".join(f"{counted[s]} from node {s}" for s in named) or "none"
    wrong = [s for s in named if s not in corrupting]
    if wrong:
        out.problems.append(
            f"seqnet_decryption_shares_invalid_total names node(s) {_nodes(wrong)}, which "
            f"never corrupted shares ({told})"
        )
    if not any(counted[s] for s in corrupting):
        out.problems.append(
            f"no honest node counted an invalid share batch from the corrupting node(s) "
            f"{_nodes(corrupting)}: seqnet_decryption_shares_invalid_total names nobody"
        )
    verdict = "named" if not out.problems else "NOT named"
    out.line = (
        f"corrupt_shares node {_nodes(corrupting)}: {verdict} by the honest nodes' invalid "
        f"share counters ({told})"
    )
    out.figures = {"behaviour": CORRUPT, "nodes": sorted(corrupting),
                   "invalid": {str(k): counted[k] for k in range(h.n)}}  # fmt: skip
    return out


# ------------------------------------------------------------ latency


PHASES = ("before", "during", "after")


def latencies(h: History) -> list[tuple[float, float]]:
    """(sent, seconds to the rollup) of every acknowledged transaction that was delivered."""
    delivered = first_deliveries(h)
    return sorted(
        (s.sent, delivered[s.digest] - s.sent)
        for s in h.submissions
        if s.acked is not None and s.digest in delivered
    )


def phase(windows: Sequence[Window], t: float) -> str:
    """``before`` the first fault, ``during`` any, ``after`` (between or after them)."""
    if not windows or t < min(w.start for w in windows):
        return "before"
    return "during" if any(w.holds(t) for w in windows) else "after"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_by_phase(h: History) -> dict[str, dict[str, float | int | None]]:
    """p50, p99 and count of submission-to-rollup latency per phase, in seconds."""
    groups: dict[str, list[float]] = {p: [] for p in PHASES}
    for sent, latency in latencies(h):
        groups[phase(h.windows, sent)].append(latency)
    return {
        p: {"p50": percentile(v, 50), "p99": percentile(v, 99), "count": len(v)}
        for p, v in groups.items()
    }


def latency_buckets(h: History, width_s: float) -> list[tuple[float, float, float, int]]:
    """(bucket start, p50, p99, count) of latency by submission time, buckets of ``width_s``."""
    groups: dict[int, list[float]] = defaultdict(list)
    for sent, latency in latencies(h):
        groups[int(sent // width_s)].append(latency)
    out = []
    for k in sorted(groups):
        v = groups[k]
        p50, p99 = percentile(v, 50), percentile(v, 99)
        assert p50 is not None and p99 is not None
        out.append((k * width_s, p50, p99, len(v)))
    return out


# ------------------------------------------------------------ helpers


def _nodes(nodes: Iterable[int]) -> str:
    return ",".join(str(n) for n in sorted(nodes))


def _shown(lines: Sequence[str]) -> tuple[str, ...]:
    if len(lines) <= SHOWN:
        return tuple(lines)
    return (*lines[:SHOWN], f"... and {len(lines) - SHOWN} more")
