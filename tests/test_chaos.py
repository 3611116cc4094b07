"""``seqnet chaos``: its checkers can fail, its scenario files are read strictly, and it runs.

The checker tests build histories by hand (a healthy run, then the same run
with one thing broken: a fork at one height, a lost digest, a duplicate, a
stall beyond the bound, a commit without a quorum, a lying metric) and show
each checker passes the first and fails the others, with evidence naming the
height, digest or time. The last tests run the short versions of bundled
scenarios through the command line on real node processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from ops.chaos import checkers, report, scenario
from ops.chaos.faults import (
    FaultError,
    current_leader,
    cut_off,
    link_rule,
    misbehaviour,
    partition_rules,
    resolve,
    resolve_groups,
)
from ops.chaos.history import (
    BatchSeen,
    BlockSeen,
    Delivery,
    Held,
    History,
    Scrape,
    Status,
    Submission,
    Window,
    from_json,
    to_json,
)
from ops.chaos.runner import Outcome
from ops.chaos.scenario import Fault, FaultKind, ScenarioError
from ops.commands.chaos import bundled_names, bundled_path

ROOT = pathlib.Path(__file__).parent.parent
FAULT_SCENARIOS = (  # through the admin endpoint of a test network
    "partition-leader",
    "loss-delay",
    "withhold-shares",
    "corrupt-shares",
    "censoring-leader",
    "broken-build",
)
NS = "rollup-a"
RATE_HZ = 4  # heights per second in the crafted histories
START = 10  # first height compared
BASE_PORT = 29500  # and +1000, +2000, +3000 (admin): no other test uses 29500-29530 there


def height_at(t: float) -> int:
    return START + int(RATE_HZ * t)


def digest(i: int) -> str:
    return f"{i:064x}"


KILLED_3 = Window(1, "kill", (3,), 10.0, 15.0, "3")


def healthy(window: Window | None = KILLED_3, seconds: float = 30.0) -> History:
    """A run of 4 nodes committing 4 heights a second, node 3 killed for 5 s, all delivered."""
    n = 4
    windows = [window] if window else []
    statuses, batches, deliveries, submissions = [], [], [], []
    down = {node: w for w in windows for node in w.nodes}
    top = height_at(seconds)
    for k in range(int(seconds * 4) + 1):
        t = k / 4
        for node in range(n):
            w = down.get(node)
            if w is not None and w.start <= t < w.end + 1.0:
                statuses.append(Status(t, node, None))
            elif w is not None and w.end + 1.0 <= t < w.end + 1.5:
                statuses.append(Status(t, node, 0, syncing=True))
            else:
                h = height_at(t)
                statuses.append(Status(t, node, h, t * 4, int(t * 4) % n, h, h))
    txs_at: dict[int, list[str]] = {}
    for i in range(int(seconds * 2)):
        sent = i / 2
        node = i % 3  # nodes 0-2: never the killed node
        submissions.append(Submission(digest(i), NS, sent, sent + 0.01, node))
        txs_at.setdefault(height_at(sent) + 2, []).append(digest(i))
    for h in range(START, top + 1):
        t = (h - START) / RATE_HZ + 0.3
        txs = tuple((NS, d, True) for d in txs_at.get(h, []))
        for node in range(n):
            batches.append(BatchSeen(t, node, h, f"{h:064x}", f"{h + 7:064x}", txs))
        deliveries.append(Delivery(t, NS, h, f"{h + 7:064x}", tuple(txs_at.get(h, []))))
    delivered = sum(len(txs_at.get(h, [])) for h in range(START, top + 1))
    baseline = {i: Status(-1.0, i, START - 1, 0, 0, START - 1, START - 1) for i in range(n)}
    final = {i: Status(seconds + 1, i, top, 0, 0, top, top) for i in range(n)}
    scrapes = [Scrape(-0.9, i, START - 1, START - 1, {NS: 100.0}) for i in range(n)]
    scrapes += [Scrape(seconds + 1.1, i, top, top, {NS: 100.0 + delivered}) for i in range(n)]
    return History(
        scenario="crafted",
        n=n,
        f=1,
        quorum=3,
        liveness_bound_s=10.0,
        start_height=START,
        load_end=seconds,
        end=seconds + 2,
        namespaces=(NS,),
        statuses=statuses,
        batches=batches,
        deliveries=deliveries,
        submissions=submissions,
        windows=windows,
        scrapes=scrapes,
        baseline=baseline,
        final=final,
    )


def verdicts(h: History) -> dict[str, checkers.Verdict]:
    return {v.checker: v for v in checkers.check_all(h)}


def failing(h: History) -> list[str]:
    return [name for name, v in verdicts(h).items() if not v.ok]


# ------------------------------------------------------------ checkers


def test_a_healthy_history_passes_every_checker() -> None:
    h = healthy()
    found = verdicts(h)
    assert failing(h) == [], {k: v.evidence for k, v in found.items()}
    assert "one block, one batch and one batch header per height" in found["agreement"].summary
    assert found["no loss"].figures["lost"] == 0
    assert found["no loss"].figures["acknowledged"] == 60
    windows = found["liveness"].figures["windows"]
    assert len(windows) == 1 and windows[0]["expected"] == "live"
    assert windows[0]["rejoin_s"] == pytest.approx(1.5)
    assert "exact" in " ".join(found["metrics"].evidence)


def test_a_fork_at_one_height_is_named_with_the_nodes_on_each_side() -> None:
    h = healthy()
    h.batches = [
        dataclasses.replace(b, block_hash="ab" * 32) if (b.node, b.height) == (2, 50) else b
        for b in h.batches
    ]
    v = verdicts(h)["agreement"]
    assert not v.ok and failing(h) == ["agreement"]
    assert v.evidence[0].startswith("fork at height 50: ")
    assert "node 0,1,3: block" in v.evidence[0] and "node 2: block abababababab" in v.evidence[0]


def test_a_header_the_rollup_verified_but_no_node_serves_is_a_fork() -> None:
    h = healthy()
    h.deliveries = [
        dataclasses.replace(d, batch_hash="cd" * 32) if d.height == 60 else d for d in h.deliveries
    ]
    v = verdicts(h)["agreement"]
    assert not v.ok
    assert "the rollup verified header cdcdcdcdcdcd at height 60" in v.evidence[0]


def test_a_committed_height_that_goes_back_after_a_restart_is_caught() -> None:
    h = healthy()
    h.statuses.append(Status(20.0, 3, 12))  # after its restart, below what it had before
    h.statuses.sort(key=lambda s: s.t)
    v = verdicts(h)["agreement"]
    assert not v.ok
    assert any("node 3's committed height fell from" in e and "to 12" in e for e in v.evidence)


def test_a_lost_digest_is_named_with_who_acknowledged_it_and_where_it_went() -> None:
    h = healthy()
    lost = digest(7)
    h.deliveries = [
        dataclasses.replace(d, digests=tuple(x for x in d.digests if x != lost))
        for d in h.deliveries
    ]
    v = verdicts(h)["no loss"]
    assert not v.ok and v.figures["lost"] == 1
    assert v.evidence[0].startswith(
        f"lost {lost[:12]} (rollup-a): acknowledged by node 1 at 3.51 s"
    )
    assert "in node 0's batch at height" in v.evidence[0]  # the nodes ordered it: delivery lost it


def test_a_digest_acknowledged_just_before_its_node_was_killed_is_at_risk_not_lost() -> None:
    h = healthy()
    risky = Submission(digest(999), NS, 9.4, 9.5, 3)  # node 3 killed at 10.0
    h.submissions.append(risky)
    v = verdicts(h)["no loss"]
    assert v.ok and v.figures["at_risk"] == 1 and v.figures["lost"] == 0
    assert any("at risk" in e and "0.50 s before fault 1 (kill)" in e for e in v.evidence)
    h.submissions[-1] = dataclasses.replace(risky, sent=9.99, acked=10.02)  # as it died
    v = verdicts(h)["no loss"]
    assert v.ok and any("as fault 1 (kill) was killing it" in e for e in v.evidence)
    h.submissions[-1] = dataclasses.replace(risky, acked=5.0, sent=4.9)  # long before: lost
    assert not verdicts(h)["no loss"].ok


def test_unacknowledged_submissions_are_not_lost() -> None:
    h = healthy()
    h.submissions.append(Submission(digest(998), NS, 12.0, None, None))  # every node failed
    v = verdicts(h)["no loss"]
    assert v.ok and v.figures["unacknowledged"] == 1


def test_a_digest_delivered_at_two_heights_is_a_duplicate() -> None:
    h = healthy()
    twice = digest(4)
    h.deliveries = [
        dataclasses.replace(d, digests=(*d.digests, twice)) if d.height == 70 else d
        for d in h.deliveries
    ]
    v = verdicts(h)["no duplicates"]
    assert not v.ok and failing(h) == ["no duplicates"]
    assert v.evidence[0].startswith(f"the rollup received {twice[:12]} twice: height ")
    assert "height 70" in v.evidence[0]


def test_a_node_that_orders_a_digest_twice_is_caught() -> None:
    h = healthy()
    twice = digest(4)
    h.batches = [
        dataclasses.replace(b, txs=(*b.txs, (NS, twice, True)))
        if (b.node, b.height) == (1, 80)
        else b
        for b in h.batches
    ]
    v = verdicts(h)["no duplicates"]
    assert not v.ok
    assert any(e.startswith(f"node 1 ordered {twice[:12]} twice") for e in v.evidence)


def drop_statuses_above(h: History, height: int, start: float, end: float) -> None:
    """No node reports anything above ``height`` from ``start`` to ``end``."""
    h.statuses = [
        dataclasses.replace(s, height=height) if start <= s.t < end and s.height else s
        for s in h.statuses
    ]


def test_commits_stopping_beyond_the_bound_with_a_quorum_up_break_liveness() -> None:
    h = healthy(seconds=40.0)
    drop_statuses_above(h, height_at(4.0), 4.0, 16.0)  # 12 s without a commit, node 3 down 10-15
    v = verdicts(h)["liveness"]
    assert not v.ok
    assert any(
        e.startswith("no commit from 4.0 s to 16.0 s (12.0 s, bound 10 s)") for e in v.evidence
    )


def stall_history() -> History:
    """Two of four killed from 10 to 20 s: the chain stops at the kill, resumes 2 s after."""
    w = Window(1, "kill", (2, 3), 10.0, 20.0, "f+1")
    h = healthy(w, seconds=40.0)
    stuck = height_at(10.0)
    shifted = []
    for s in h.statuses:
        if s.height and s.t >= 10.0:
            s = dataclasses.replace(s, height=stuck if s.t < 22.0 else height_at(s.t - 12.0))
        shifted.append(s)
    h.statuses = shifted
    h.deliveries = [
        dataclasses.replace(d, t=d.t + 12.0) if d.height > stuck else d for d in h.deliveries
    ]
    return h


def test_a_stall_that_the_scenario_expects_passes_and_is_measured() -> None:
    h = stall_history()
    v = verdicts(h)["liveness"]
    assert v.ok, v.evidence
    (w,) = v.figures["windows"]
    assert w["expected"] == "stall" and w["down"] == 2
    assert w["commit_recovery_s"] == pytest.approx(2.25)  # the first height above, 22.25 s
    assert w["stall_s"] == pytest.approx(12.25)  # from the last commit, at 10 s


def test_a_commit_while_the_quorum_is_lost_breaks_liveness() -> None:
    h = stall_history()
    h.statuses.append(Status(15.0, 0, height_at(10.0) + 3))
    v = verdicts(h)["liveness"]
    assert not v.ok
    assert any("a commit without a quorum" in e and "at 15.0 s" in e for e in v.evidence)


def test_a_recovery_slower_than_the_bound_breaks_liveness() -> None:
    h = stall_history()
    stuck = height_at(10.0)
    h.statuses = [
        dataclasses.replace(s, height=stuck) if s.height and 20.0 <= s.t < 33.0 else s
        for s in h.statuses
    ]
    v = verdicts(h)["liveness"]
    assert not v.ok
    assert any(
        "commits resumed 13.0 s after the heal at 20.0 s, bound 10 s" in e for e in v.evidence
    )


def test_a_node_that_never_comes_back_breaks_liveness() -> None:
    h = healthy()
    h.statuses = [
        dataclasses.replace(s, height=None) if s.node == 3 and s.t >= 10.0 else s
        for s in h.statuses
    ]
    v = verdicts(h)["liveness"]
    assert not v.ok
    assert any("node 3 never reached height" in e for e in v.evidence)


def test_metrics_below_the_api_or_counting_more_than_stored_disagree() -> None:
    h = healthy()
    h.scrapes[-1] = dataclasses.replace(h.scrapes[-1], height=50.0)  # node 3, below its API
    v = verdicts(h)["metrics"]
    assert not v.ok and "node 3: seqnet_height 50.0" in v.evidence[0]
    h = healthy()
    h.scrapes[-4] = dataclasses.replace(h.scrapes[-4], decrypted={NS: 1000.0})  # node 0
    v = verdicts(h)["metrics"]
    assert not v.ok
    assert "seqnet_transactions_decrypted_total{namespace='rollup-a'} grew by 900" in v.evidence[0]


def two_at(h: History, height: int) -> tuple[str, str]:
    """Every node's batch at ``height`` holds two transactions; node 3's reversed, uncertified
    (a broken build); the chain itself agrees (``/v1/blocks``)."""
    a, b = "ab" * 32, "cd" * 32
    h.batches = [
        dataclasses.replace(
            x,
            txs=((NS, b, True), (NS, a, True)) if x.node == 3 else ((NS, a, True), (NS, b, True)),
            batch_hash=None if x.node == 3 else x.batch_hash,
        )
        if x.height == height
        else x
        for x in h.batches
    ]
    h.blocks = [BlockSeen(40.0, node, height, f"{height:064x}") for node in range(4)]
    return a, b


def test_a_node_serving_batches_of_its_own_on_the_same_chain_is_named() -> None:
    h = healthy()
    a, b = two_at(h, 60)
    block = f"{60:064x}"[:12]
    v = verdicts(h)["agreement"]
    assert not v.ok
    assert v.evidence[0].startswith(
        f"batches differ at height 60 (one committed block {block}): node 0,1,2: 2 "
        f"transactions [{a[:12]}, {b[:12]}]; node 3: 2 transactions [{b[:12]}, {a[:12]}] "
        "(reversed: the same transactions, first apart at position 0)"
    )
    assert v.evidence[0].endswith(f"the chain agrees: /v1/blocks/60 is {block} on node 0,1,2,3")
    assert "batches of their own: node 3 at 1 height(s)" in v.summary
    assert v.figures["odd_nodes"] == {"3": 1}
    h.blocks[-1] = dataclasses.replace(h.blocks[-1], block_hash="ef" * 32)
    assert "/v1/blocks/60 differs too: node 0,1,2: " in verdicts(h)["agreement"].evidence[0]


def test_a_transaction_stranded_by_a_cut_link_is_told_apart_and_fails_the_run() -> None:
    cut = Window(1, "partition", (3,), 10.0, 15.0, "leader | rest", detail="sides 3 | 0,1,2")
    h = healthy(cut)
    stuck = Submission(digest(990), NS, 11.0, 11.01, 3)
    h.submissions.append(stuck)
    h.held = [Held(40.0, node, stuck.digest, "pending" if node == 3 else "unknown")
              for node in range(4)]  # fmt: skip
    v = verdicts(h)["no loss"]
    assert not v.ok and v.figures["stranded"] == 1 and v.figures["lost"] == 0
    assert "1 stranded (acknowledged by a node while a link fault dropped its relay" in v.summary
    assert any(
        e.startswith(f"stranded {stuck.digest[:12]}: acknowledged by node 3 at 11.01 s while "
                     "fault 1 (partition) held its links")
        for e in v.evidence
    )  # fmt: skip
    h.held[0] = Held(40.0, 0, stuck.digest, "pending")  # another node has it: not stranded
    v = verdicts(h)["no loss"]
    assert not v.ok
    assert (
        "in no node's decrypted batches; at the end pending at node 0, unknown at node 1"
        in (v.evidence[0])
    )
    h.held = []  # not located: nothing shows it is stuck rather than lost
    assert not verdicts(h)["no loss"].ok
    h.held = [Held(40.0, n, stuck.digest, "pending" if n == 3 else "unknown") for n in range(4)]
    h.submissions[-1] = dataclasses.replace(stuck, sent=8.0, acked=8.01)  # before the cut
    assert not verdicts(h)["no loss"].ok


def byzantine(behaviour: str, namespace: str = "") -> Window:
    return Window(1, "byzantine", (3,), 10.0, 15.0, "f", behaviour, namespace, behaviour)


def test_a_censored_namespace_must_still_be_delivered_within_the_bound() -> None:
    h = healthy(byzantine("censor", NS))
    v = verdicts(h)["censorship"]
    assert v.ok and v.figures["windows"][0]["acknowledged"] == 10
    assert "10 rollup-a transactions acknowledged, 10 delivered within 10 s of it" in v.summary
    late = digest(24)  # sent at 12 s
    h.deliveries = [
        dataclasses.replace(d, digests=tuple(x for x in d.digests if x != late))
        for d in h.deliveries
    ]
    v = verdicts(h)["censorship"]
    assert not v.ok
    assert v.evidence[0] == (
        f"fault 1 (censor rollup-a by node 3): {late[:12]} acknowledged by node 0 at 12.01 s, "
        "never delivered, bound 10 s"
    )
    assert [x.checker for x in checkers.check_all(healthy())] == [
        "agreement", "no loss", "no duplicates", "liveness", "metrics",
    ]  # fmt: skip


def shares(h: History, by_node: dict[int, tuple[dict[str, float], dict[str, float]]]) -> None:
    """Scrapes inside the fault (11.5 s and 14.5 s) with these share counters per node."""
    for node, (first, last) in by_node.items():
        h.scrapes.append(Scrape(11.5, node, None, None, shares=first))
        h.scrapes.append(Scrape(14.5, node, None, None, shares=last))
    h.scrapes.sort(key=lambda s: s.t)


def test_the_honest_share_counters_must_name_a_withholding_validator_and_nobody_else() -> None:
    before = {"0": 10.0, "1": 10.0, "2": 10.0, "3": 7.0}
    after = {"0": 20.0, "1": 20.0, "2": 20.0, "3": 7.0}
    h = healthy(byzantine("withhold_shares"))
    shares(h, {node: (before, after) for node in range(3)})
    v = verdicts(h)["blame"]
    assert v.ok and "named by the share counters of node 0,1,2" in v.summary
    told = "node 0 received share batches 10 from node 1, 10 from node 2, 0 from node 3"
    assert told in v.evidence[0]
    h = healthy(byzantine("withhold_shares"))
    shares(h, {0: (before, {**after, "3": 8.0}), 1: (before, {**after, "2": 10.0})})
    v = verdicts(h)["blame"]
    assert not v.ok
    mine = "seqnet_decryption_shares_received_total"
    assert f"node 0's {mine} grew for the withholding node(s) 3: " in v.evidence[0]
    assert f"node 1's {mine} stopped for node(s) 2, which kept decrypting: " in v.evidence[1]
    h = healthy(byzantine("withhold_shares"))  # node 2 honest but stuck behind: no shares
    shares(h, {1: (before, {**after, "2": 10.0})})
    h.statuses = [
        dataclasses.replace(s, decrypted=50) if s.node == 2 and 11 <= s.t <= 15 else s
        for s in h.statuses
    ]
    assert verdicts(h)["blame"].ok
    h = healthy(byzantine("withhold_shares"))  # no scrape inside the fault: not judged
    assert (
        "no honest node received share batches it could judge by"
        in (verdicts(h)["blame"].evidence[0])
    )


def test_invalid_shares_must_name_the_corrupting_validator_and_nobody_else() -> None:
    h = healthy(byzantine("corrupt_shares"))
    last = {s.node: k for k, s in enumerate(h.scrapes) if s.t > 30}
    h.scrapes[last[0]] = dataclasses.replace(h.scrapes[last[0]], invalid_shares={"3": 2.0})
    v = verdicts(h)["blame"]
    assert v.ok and "named by the honest nodes' invalid share counters (2 from node 3)" in v.summary
    h.scrapes[last[1]] = dataclasses.replace(h.scrapes[last[1]], invalid_shares={"2": 1.0})
    v = verdicts(h)["blame"]
    assert not v.ok and "names node(s) 2, which never corrupted shares" in v.evidence[0]
    h = healthy(byzantine("corrupt_shares"))
    assert "names nobody" in verdicts(h)["blame"].evidence[0]


def test_failed_rounds_must_name_a_censoring_leader() -> None:
    h = healthy(byzantine("censor", NS))
    for node in range(3):
        h.scrapes += [Scrape(11.5, node, None, None, round_failures={"3": 1.0}),
                      Scrape(14.5, node, None, None, round_failures={"3": 2.0})]  # fmt: skip
    h.scrapes.sort(key=lambda s: s.t)
    v = verdicts(h)["blame"]
    assert v.ok and "named in the failed rounds node 0,1,2 saw" in v.summary
    assert "3 led by node 3" in v.summary
    h.scrapes = [dataclasses.replace(s, round_failures={}) for s in h.scrapes]
    assert "did not grow for the censoring leader" in verdicts(h)["blame"].evidence[0]


def test_latency_is_split_before_during_and_after_the_faults() -> None:
    h = healthy()
    phases = checkers.latency_by_phase(h)
    assert phases["before"]["count"] + phases["during"]["count"] + phases["after"]["count"] == 60
    assert phases["during"]["count"] == 10  # 10-15 s, two a second
    assert all(0 < (p["p50"] or 0) <= (p["p99"] or 0) < 2 for p in phases.values())
    assert checkers.percentile([1, 2, 3, 4], 50) == 2 and checkers.percentile([], 50) is None


def test_a_history_survives_json_and_the_report_is_well_formed(tmp_path: pathlib.Path) -> None:
    h = stall_history()
    again = from_json(json.loads(json.dumps(to_json(h))))
    assert again == h
    s = scenario.load(bundled_path("kill-f-plus-1"))
    outcome = Outcome(s, h, checkers.check_all(h), checkers.latency_by_phase(h))
    page = report.write(tmp_path, [outcome])
    svg = ET.parse(tmp_path / "kill-f-plus-1.svg").getroot()
    nodes = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]
    assert len(nodes) == 4
    assert any(r.get("data-fault") == "1" for r in svg.iter("{http://www.w3.org/2000/svg}rect"))
    html = page.read_text()
    assert "<script" not in html and "<svg" in html and "kill-f-plus-1" in html
    summary = json.loads((tmp_path / "kill-f-plus-1.json").read_text())
    assert summary["ok"] and summary["safe"] and summary["live"] and summary["nothing_lost"]
    assert report.table_lines([outcome])[2].startswith("| kill-f-plus-1 | PASS | 12.2 | - |")


# ------------------------------------------------------------ scenario files


def test_every_bundled_scenario_reads_and_says_what_it_does() -> None:
    names = bundled_names()
    assert {"kill-f", "kill-f-plus-1", "pause-node", "full-restart", "kill-leader"} <= set(names)
    assert set(FAULT_SCENARIOS) <= set(names)
    for name in names:
        s = scenario.load(bundled_path(name))
        assert s.name == name and len(s.description) > 40 and (s.faults or s.broken)
        short = s.short()
        assert short.duration_s <= scenario.SHORT_DURATION_S + 1e-9
        assert short.load.rate <= scenario.SHORT_RATE
        assert all(f.until_s - f.at_s >= scenario.SHORT_MIN_WINDOW_S - 1e-9 for f in short.faults)
        scenario.check(short)  # still consistent


KILL_3 = 'kind = "kill"\ntargets = [3]'
BROKEN = 'broken = {node = 3, build = "reorder_batches"}'
GOOD = """
name = "t"
duration_s = 30
[expect]
live = true
[[faults]]
kind = "kill"
targets = [3]
at_s = 5
until_s = 10
"""


def refused(text: str, tmp_path: pathlib.Path) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        scenario.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("duration_s = 30", "duraton_s = 30"), "duraton_s is not a known key here"),
        (("until_s = 10", "until_s = 10\nwhen = 3"), "faults[1].when is not a known key"),
        (("until_s = 10", "until_s = 40"), "faults[1].until_s = 40 is beyond the run"),
        (("until_s = 10", "until_s = 4"), "faults[1].until_s = 4 must be after at_s = 5"),
        (("at_s = 5", "at_s = -1"), "faults[1].at_s = -1: must be at least 0"),
        (("targets = [3]", "targets = [4]"), "holds node 4, outside the committee: nodes are 0..3"),
        (("targets = [3]", "targets = ['f+1']"), "expect.live = true, but 2 of 4 nodes are down"),
        (("live = true", "live = false"), "expect.live = false, but at most 1 of 4 nodes"),
        (("targets = [3]", "targets = ['boss']"), "the symbolic targets are leader, f, f+1"),
        (("targets = [3]", "targets = []"), "is empty"),
        (("targets = [3]", "targets = [3, 3]"), "names 3 twice"),
        (('kind = "kill"', 'kind = "explode"'), "'explode' is not a fault kind"),
        (('kind = "kill"', 'kind = "partition"'), "targets is not a key of partition faults"),
        ((KILL_3, 'kind = "partition"\ngroups = [[0, 1, 2, 3]]'), "nothing is cut"),
        ((KILL_3, 'kind = "partition"\ngroups = [[0, 1], [2, 3]]'), "2 of 4 nodes are down"),
        ((KILL_3, 'kind = "partition"\ngroups = [["f"]]'), 'the only symbol here is "leader"'),
        ((KILL_3, 'kind = "partition"\ngroups = [[0], [0]]'), "names 0 twice"),
        (('kind = "kill"', 'kind = "delay_loss"'), "does nothing: give it loss"),
        (('kind = "kill"', 'kind = "delay_loss"\nloss = 1.5'), "loss = 1.5: must be a prob"),
        (('kind = "kill"', 'kind = "delay_loss"\ndelay_ms = 5\nprotocol = "gossip"'), "'gossip'"),
        (('kind = "kill"', 'kind = "kill"\nloss = 0.1'), "loss is not a key of kill faults"),
        (('kind = "kill"', 'kind = "byzantine"'), "behaviour is required"),
        (('kind = "kill"', 'kind = "byzantine"\nbehaviour = "lying"'), "'lying' is no behaviour"),
        (('kind = "kill"', 'kind = "byzantine"\nbehaviour = "censor"'), "namespace is required"),
        (
            ('kind = "kill"', 'kind = "byzantine"\nbehaviour = "garbage"\nnamespace = "x"'),
            "namespace is for censor only",
        ),
        (
            (KILL_3, 'kind = "byzantine"\nbehaviour = "garbage"\ntargets = ["f+1"]'),
            "expect.safe = true, but 2 of 4 validators are Byzantine at 5 s, more than f = 1",
        ),
        (("live = true", "live = true\nsafe = 'no'"), "expect.safe = 'no': must be true or"),
        (('name = "t"', f'name = "t"\n{BROKEN}'), "set expect.safe = false to say"),
        (('name = "t"', 'name = "t"\nbroken = {node = 3, build = "fast"}'), "build = 'fast'"),
        (('name = "t"', 'name = "t"\nbroken = {node = 4, build = "x"}'), "broken.node = 4"),
        (('kind = "kill"', 'kind = "restart_all"'), "must be left out: restart_all takes"),
        (("duration_s = 30", "duration_s = 'long'"), "duration_s = 'long': must be a number"),
        (("duration_s = 30", ""), "duration_s is required"),
        (('name = "t"', 'name = "a b"'), "name = 'a b': use letters"),
        (("[expect]", "[load]\nrate = 0\n[expect]"), "load.rate = 0: must be between 1"),
        (("[expect]", "[load]\nspeed = 3\n[expect]"), "load.speed is not a known key"),
    ],
)
def test_a_careless_scenario_is_refused_with_one_clear_line(
    change: tuple[str, str], expected: str, tmp_path: pathlib.Path
) -> None:
    old, new = change
    assert old in GOOD
    assert expected in refused(GOOD.replace(old, new, 1), tmp_path)


def test_overlapping_faults_on_one_node_or_beside_restart_all_are_refused(
    tmp_path: pathlib.Path,
) -> None:
    second = "\n[[faults]]\nkind = 'pause'\ntargets = [3]\nat_s = 8\nuntil_s = 12\n"
    assert "targets node 3, which faults[1]" in refused(GOOD + second, tmp_path)
    restart = "\n[[faults]]\nkind = 'restart_all'\nat_s = 9\nuntil_s = 12\n"
    text = GOOD.replace("live = true", "live = false") + restart
    assert "restart_all takes every node" in refused(text, tmp_path)
    two = "\n[[faults]]\nkind = 'pause'\ntargets = ['f']\nat_s = 8\nuntil_s = 12\n"
    assert "2 of 4 nodes are down at 8 s" in refused(GOOD + two, tmp_path)
    cut = "\n[[faults]]\nkind = 'partition'\ngroups = [[0]]\nat_s = 8\nuntil_s = 12\n"
    assert "cannot run beside one that stops processes" in refused(GOOD + cut, tmp_path)
    slow = "\n[[faults]]\nkind = 'delay_loss'\ndelay_ms = 9\nat_s = 9\nuntil_s = 12\n"
    links = GOOD.replace(KILL_3, "kind = 'partition'\ngroups = [[0]]") + slow
    assert "one partition or delay_loss at a time" in refused(links, tmp_path)
    liar = "\n[[faults]]\nkind = 'byzantine'\nbehaviour = 'lie_reports'\ntargets = [1]\n"
    both = (
        GOOD.replace(KILL_3, "kind = 'partition'\ngroups = [[0]]")
        + liar
        + "at_s = 9\nuntil_s = 12\n"
    )
    assert "2 of 4 validators are down or Byzantine at 9 s" in refused(both, tmp_path)


def test_not_toml_and_symbols_naming_no_node_are_refused(tmp_path: pathlib.Path) -> None:
    assert "not valid TOML" in refused("name = [", tmp_path)
    three = GOOD.replace("[expect]", "nodes = 3\n[expect]").replace(
        "targets = [3]", "targets = ['f']"
    )
    assert "targets = ['f'] is no node: f = 0 for 3 nodes" in refused(three, tmp_path)


def test_the_run_lasts_until_every_heal_had_its_bound() -> None:
    s = scenario.parse(
        {"duration_s": 20, "faults": [{"kind": "kill", "targets": [1], "at_s": 5, "until_s": 18}]},
        default_name="x",
    )
    assert s.run_s == 28.0 and s.name == "x" and s.faults[0].kind is FaultKind.KILL


# ------------------------------------------------------------ whom a fault takes


def test_symbolic_targets_take_the_highest_free_nodes_and_the_reported_leader() -> None:
    kill = Fault(FaultKind.KILL, ("f+1",), 0, 1)
    assert resolve(kill, 4, set(), []) == (2, 3)
    assert resolve(kill, 4, {3}, []) == (1, 2)
    statuses: list[dict[str, Any] | None] = [
        {"round": 41, "leader": 1},
        {"round": 42, "leader": 2},
        None,
        {"round": 42, "leader": 2},
    ]
    assert current_leader(statuses) == (42, 2)
    leader = Fault(FaultKind.KILL, ("leader",), 0, 1)
    assert resolve(leader, 4, set(), statuses) == (2,)
    assert resolve(leader, 4, {2}, statuses) == (3,)  # round 43's leader instead
    with pytest.raises(FaultError, match="cannot tell the leader"):
        resolve(leader, 4, set(), [None] * 4)
    with pytest.raises(FaultError, match="needs 2 nodes up and free"):
        resolve(kill, 4, {1, 2, 3}, [])
    everyone = Fault(FaultKind.RESTART_ALL, (), 0, 1)
    assert resolve(everyone, 4, set(), []) == (0, 1, 2, 3)


def test_a_partition_cuts_every_link_between_its_sides_and_the_leader_is_resolved() -> None:
    statuses: list[dict[str, Any] | None] = [{"round": 42, "leader": 2}] * 4
    alone = Fault(FaultKind.PARTITION, (), 0, 1, groups=(("leader",),), rest=True)
    assert alone.width(4) == 1 and alone.byzantine(4) == 0 and alone.who() == "leader | rest"
    groups = resolve_groups(alone, 4, set(), statuses)
    assert groups == ((2,), (0, 1, 3)) and cut_off(groups) == (2,)
    assert resolve(alone, 4, set(), statuses) == (2,)
    rules = partition_rules(groups)
    assert rules[2] == [{"peer": p, "cut": True} for p in (0, 1, 3)]
    assert rules[0] == rules[1] == rules[3] == [{"peer": 2, "cut": True}]
    halves = Fault(FaultKind.PARTITION, (), 0, 1, groups=((0, 1), (2, 3)))
    assert halves.who() == "0,1 | 2,3"
    assert halves.width(4) == 2 and cut_off(resolve_groups(halves, 4, set(), [])) == (2, 3)
    slow = Fault(FaultKind.DELAY_LOSS, (), 0, 1, loss=0.2, delay_ms=30)
    assert slow.width(4) == 0 and resolve(slow, 4, set(), []) == (0, 1, 2, 3)
    assert slow.describe() == "delay_loss every node (loss 20%, delay 30 ms) 0-1 s"
    assert link_rule(slow) == {"protocol": None, "loss": 0.2, "delay_ms": 30}
    censor = Fault(FaultKind.BYZANTINE, ("f",), 0, 1, behaviour="censor", namespace="rollup-b")
    assert censor.width(4) == 0 and censor.byzantine(4) == 1
    assert misbehaviour(censor) == {"censor": "rollup-b"}
    assert misbehaviour(dataclasses.replace(censor, behaviour="garbage", namespace=None)) == {
        "garbage": True
    }


# ------------------------------------------------------------ the command


def chaos(
    *args: str, timeout: float = 60, tmp: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``seqnet chaos ...``; ``tmp``: where --cluster makes its clusters' directories."""
    env = None if tmp is None else {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, "-m", "sequencer_net.cli", "chaos", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def test_list_and_help_and_a_bad_file_exit_as_documented(tmp_path: pathlib.Path) -> None:
    listing = chaos("list")
    assert listing.returncode == 0
    for name in bundled_names():
        assert f"{name}\n" in listing.stdout
    for args in (("--help",), ("run", "--help"), ("list", "--help")):
        assert chaos(*args).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('kind = "kill"', 'kind = "partition"'))
    run = chaos("run", str(bad), "--cluster")
    assert run.returncode == 2 and "not a key of partition faults" in run.stderr, run.stderr
    assert chaos("run", "no-such-scenario", "--cluster").returncode == 2
    nowhere = chaos("run", "kill-f", "--dir", str(tmp_path / "none"))
    assert nowhere.returncode == 2 and "no cluster in" in nowhere.stderr
    assert "cluster up --test-network --detach" in chaos("run", "loss-delay", "--dir", "x").stderr


def test_admin_faults_need_a_test_network_and_a_broken_build_its_own_cluster(
    tmp_path: pathlib.Path,
) -> None:
    net = tmp_path / "net"  # an ordinary network (no admin endpoints); nothing started
    keygen = [
        sys.executable,
        "-m",
        "sequencer_net.cli",
        "keygen",
        "--nodes",
        "4",
        "--dir",
        str(net),
    ]
    subprocess.run(keygen, check=True, capture_output=True)
    run = chaos("run", "withhold-shares", "--dir", str(net))
    assert run.returncode == 2, run.stderr
    assert "is not a test network" in run.stderr
    assert "seqnet cluster up --test-network --detach --dir DIR" in run.stderr
    assert "seqnet keygen --test-network" in run.stderr
    broken = chaos("run", "broken-build", "--dir", str(net))
    assert broken.returncode == 2 and "use --cluster" in broken.stderr
    up = [sys.executable, "-m", "sequencer_net.cli", "cluster", "up", "--test-network"]
    again = subprocess.run([*up, "--dir", str(net)], capture_output=True, text=True, check=False)
    assert again.returncode == 2 and "not a test network: add --fresh" in again.stderr


SHORT_RUNS = ("kill-f-plus-1", "full-restart", "pause-node")


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, pathlib.Path]:
    """The short scenarios on fresh clusters of real processes, one command for all."""
    out = tmp_path_factory.mktemp("chaos-report")
    clusters = tmp_path_factory.mktemp("clusters")  # their logs stay with the test's files
    args = ("run", *SHORT_RUNS, "--cluster", "--short", "--base-port", str(BASE_PORT))
    run = chaos(*args, "--report", str(out), timeout=300, tmp=clusters)
    return run, out


@pytest.mark.parametrize("name", SHORT_RUNS)
def test_a_short_scenario_on_real_processes_is_safe_live_and_loses_nothing(
    name: str, short_runs: tuple[Any, pathlib.Path]
) -> None:
    run, out = short_runs
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert f"{name}: PASS: safe, live, nothing lost, metrics agree" in run.stdout
    assert (out / "index.html").is_file() and (out / f"{name}.svg").is_file()
    summary = json.loads((out / f"{name}.json").read_text())
    assert summary["ok"] and summary["safe"] and summary["live"] and summary["nothing_lost"]
    by_checker = {v["checker"]: v for v in summary["verdicts"]}
    assert by_checker["no loss"]["figures"]["acknowledged"] > 100
    assert by_checker["agreement"]["figures"]["heights"] > 20
    (window,) = by_checker["liveness"]["figures"]["windows"]
    assert window["commit_recovery_s"] is not None and window["commit_recovery_s"] <= 10
    assert window["expected"] == ("live" if name == "pause-node" else "stall")
    history = from_json(json.loads((out / f"{name}.history.json").read_text()))
    assert checkers.check_all(history) == [
        checkers.Verdict(**{**v, "evidence": tuple(v["evidence"])}) for v in summary["verdicts"]
    ]
    assert f"report: {out / 'index.html'}" in run.stdout
