"""Fair ordering: the policies, the inclusion rule, and proposals replicas refuse."""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordering.fair.app import FairOrderingApp, FairPayload
from ordering.fair.policies import (
    Arrival,
    BatchOrderFair,
    MedianTimestamp,
    candidates,
    make_policy,
    median_times,
    strongly_connected,
)
from ordering.fair.reports import SEQ_VOTE, OrderReport, report_seq
from ordering.messages import MAX_PAYLOAD_BYTES, Block
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from tests.factory import Net

A, B, C, D = (bytes([i]) * 32 for i in range(1, 5))


def report(node: int, *entries: tuple[bytes, int], seq: int = 1) -> OrderReport:
    return OrderReport.of(node, seq, entries)


# ------------------------------------------------------------ policies


def test_inclusion_needs_f_plus_one_reports() -> None:
    reports = [report(0, (A, 1), (B, 2)), report(1, (A, 1)), report(2, (C, 1))]
    assert candidates(reports, f=1, exclude=set()) == [A]
    assert candidates(reports, f=1, exclude={A}) == []


def test_median_orders_by_the_middle_time_and_missing_counts_as_late() -> None:
    reports = [report(0, (A, 10), (B, 5)), report(1, (A, 11), (B, 30)), report(2, (A, 12))]
    assert median_times(reports, [A, B]) == {A: 11, B: 30}
    assert MedianTimestamp(4, 1).order(reports, proposer=0, exclude=set()) == [A, B]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=3, max_size=3),
    st.lists(st.integers(0, 10**7), min_size=2, max_size=2),
)
def test_f_liars_cannot_push_the_median_outside_honest_times(
    honest: list[int], lies: list[int]
) -> None:
    """n = 7, f = 2: five reports, two of them lying about A's time."""
    reports = [report(i, (A, t)) for i, t in enumerate(honest + lies)]
    median = median_times(reports, [A])[A]
    assert min(honest) <= median <= max(honest)


def test_arrival_is_the_leaders_order_and_may_add_what_only_it_saw() -> None:
    reports = [
        report(0, (B, 1), (A, 2), (D, 3)),
        report(1, (A, 1), (B, 2)),
        report(2, (A, 1), (B, 2)),
    ]
    assert Arrival(4, 1).order(reports, proposer=0, exclude=set()) == [B, A, D]


def test_batch_order_fair_refuses_too_small_a_committee() -> None:
    with pytest.raises(ValueError, match="4f\\+1"):
        BatchOrderFair(4, 1)
    with pytest.raises(ValueError, match="4f\\+1"):
        make_policy("batch-order-fair", 7, 2)
    assert make_policy("batch-order-fair", 5, 1).name == "batch-order-fair"


def test_batch_order_fair_respects_an_order_most_reports_agree_on() -> None:
    reports = [report(i, (B, 1), (A, 2), (C, 3)) for i in range(3)] + [
        report(3, (A, 1), (B, 2), (C, 3))
    ]
    assert BatchOrderFair(5, 1).order(reports, proposer=0, exclude=set()) == [B, A, C]


def test_a_condorcet_cycle_becomes_one_batch() -> None:
    reports = [
        report(0, (A, 1), (B, 2), (C, 3)),
        report(1, (B, 1), (C, 2), (A, 3)),
        report(2, (C, 1), (A, 2), (B, 3)),
        report(3, (A, 1), (B, 2), (C, 3)),
    ]
    policy = BatchOrderFair(5, 1)
    edges = policy._edges(reports, [A, B, C])
    assert len(strongly_connected([A, B, C], edges)) == 1
    assert sorted(policy.order(reports, proposer=0, exclude=set())) == [A, B, C]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ordering policy"):
        make_policy("first-come", 4, 1)


# ------------------------------------------------------------ the payload app

NET = Net(4)


def apps() -> list[FairOrderingApp]:
    return [FairOrderingApp(NET.committee, i, NET.keys[i], MedianTimestamp(4, 1)) for i in range(4)]


def block_with(payload: FairPayload, round_: int = 2, height: int = 2) -> Block:
    parent = NET.block(1, NET.genesis_qc)
    return Block(height, round_, round_ % 4, NET.qc(parent), codec.encode(payload))


def no_ancestors(_: bytes) -> None:
    return None


def leader_with_reports(txs: dict[bytes, int]) -> tuple[FairOrderingApp, list[FairOrderingApp]]:
    nodes = apps()
    for node in nodes:
        for digest, t in txs.items():
            node.on_transaction(digest, t + node.me)
    leader = nodes[2]
    for node in nodes:
        if node is not leader:
            leader.on_report(node.me, node.make_report(1, timeout=False))
    return leader, nodes


def test_replicas_accept_the_leaders_fair_order() -> None:
    leader, nodes = leader_with_reports({A: 10, B: 5})
    data = leader.propose_payload(b"\x00" * 32, 2, 2, no_ancestors)
    assert data is not None
    payload = codec.decode(FairPayload, data)
    assert payload.order == (B, A) and len(payload.reports) == 3
    block = block_with(payload)
    assert all(n.validate_payload(block, b"\x01" * 32, no_ancestors) for n in nodes)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: replace(p, order=p.order[:1]), "order-cut-short"),  # leaves a reported tx out
        (lambda p: replace(p, order=tuple(reversed(p.order))), "order-differs"),
        (lambda p: replace(p, reports=p.reports[:2]), "wrong-report-count"),
        (lambda p: replace(p, reports=(p.reports[0],) * 3), "wrong-report-count"),
        (lambda p: replace(p, reports=(), order=()), "missing-reports"),
        (
            lambda p: replace(
                p, reports=(replace(p.reports[0], signature=bytes(64)), *p.reports[1:])
            ),
            "report-signature",
        ),
        (  # a known report's signature on other entries: the known copy does not vouch for it
            lambda p: replace(
                p,
                reports=(
                    replace(
                        p.reports[0],
                        statement=replace(p.reports[0].statement, digests=b"", times=b""),
                    ),
                    *p.reports[1:],
                ),
            ),
            "report-signature",
        ),
    ],
    ids=["censors", "reorders", "too-few", "duplicates", "empty", "forged", "altered"],
)
def test_replicas_refuse_a_bad_proposal(mutate: object, reason: str) -> None:
    leader, nodes = leader_with_reports({A: 10, B: 5})
    data = leader.propose_payload(b"\x00" * 32, 2, 2, no_ancestors)
    assert data is not None
    bad = mutate(codec.decode(FairPayload, data))  # type: ignore[operator]
    replica = nodes[0]
    assert not replica.validate_payload(block_with(bad), b"\x01" * 32, no_ancestors)
    assert replica.rejected == {reason: 1}


class Bodies:
    """Transaction bodies by digest, as a node's mempool holds them (a body names itself)."""

    def __init__(self, bodies: dict[bytes, bytes]) -> None:
        self.bodies = bodies

    def body(self, digest: bytes) -> bytes | None:
        return self.bodies.get(digest)

    def digest_of(self, body: bytes) -> bytes | None:
        return next((d for d, b in self.bodies.items() if b == body), None)


def test_a_full_block_cuts_the_order_where_the_next_body_would_not_fit() -> None:
    """Bodies worth more than a block: a prefix goes now, replicas accept the cut."""
    digests = [bytes([7, i]) * 16 for i in range(80)]
    bodies = Bodies({d: d * 2000 for d in digests})  # 64,000 bytes each: ~5 MB in all
    nodes = [
        FairOrderingApp(NET.committee, i, NET.keys[i], MedianTimestamp(4, 1), bodies=bodies)
        for i in range(4)
    ]
    for node in nodes:
        for k, digest in enumerate(digests):
            node.on_transaction(digest, 10 + k)
    leader = nodes[2]
    for node in nodes:
        if node is not leader:
            leader.on_report(node.me, node.make_report(1, timeout=False))
    data = leader.propose_payload(b"\x00" * 32, 2, 2, no_ancestors)
    assert data is not None and len(data) <= MAX_PAYLOAD_BYTES
    payload = codec.decode(FairPayload, data)
    assert 0 < len(payload.order) < len(digests)
    assert payload.order == tuple(digests[: len(payload.order)])  # the fair order's prefix
    block = block_with(payload)
    assert all(n.validate_payload(block, b"\x01" * 32, no_ancestors) for n in nodes)
    shorter = block_with(replace(payload, order=payload.order[:-20], txs=payload.txs[:-20]))
    assert not nodes[0].validate_payload(shorter, b"\x02" * 32, no_ancestors)
    assert nodes[0].rejected == {"order-cut-short": 1}  # room was left: that is censorship


def test_old_reports_cannot_be_used_in_a_later_round() -> None:
    leader, nodes = leader_with_reports({A: 10})
    data = leader.propose_payload(b"\x00" * 32, 2, 2, no_ancestors)
    assert data is not None
    late = block_with(codec.decode(FairPayload, data), round_=5)  # reports are from rounds 1-2
    assert not nodes[0].validate_payload(late, b"\x01" * 32, no_ancestors)
    assert nodes[0].rejected == {"stale-report": 1}


def test_a_leader_short_of_reports_waits() -> None:
    nodes = apps()
    assert nodes[2].propose_payload(b"\x00" * 32, 2, 2, no_ancestors) is None
    assert nodes[2].propose_payload(b"\x00" * 32, 1, 1, no_ancestors) is not None  # genesis child


def test_reports_from_the_wrong_signer_or_garbage_are_counted_and_dropped() -> None:
    nodes = apps()
    nodes[2].on_report(1, nodes[0].make_report(1, timeout=False))
    nodes[2].on_report(1, b"\x00garbage")
    assert sum(nodes[2].rejected.values()) == 2 and 1 not in nodes[2].received


def test_report_sequence_grows_with_the_round() -> None:
    assert report_seq(5, SEQ_VOTE) < report_seq(6, 0) < report_seq(6, SEQ_VOTE)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([FairPayload, "report"]))
def test_payload_and_report_decoders_reject_garbage_with_the_typed_error(
    data: bytes, kind: object
) -> None:
    from sequencer_net.base.signing import Signed

    cls = Signed[OrderReport] if kind == "report" else FairPayload
    with contextlib.suppress(codec.DecodeError):
        codec.decode(cls, data)


def test_garbage_payloads_are_refused_by_replicas() -> None:
    nodes = apps()
    block = Block(2, 2, 2, NET.qc(NET.block(1, NET.genesis_qc)), b"\xff\x00garbage")
    assert not nodes[0].validate_payload(block, b"\x01" * 32, no_ancestors)
    assert nodes[0].rejected == {"payload-malformed": 1}


@pytest.mark.parametrize(
    ("digests", "times", "why"),
    [
        (b"d" * 33, bytes(8), "back to back"),
        (b"d" * 32, bytes(16), "one 8-byte time per digest"),
        (b"d" * 64, bytes(16), "appears twice"),
        (b"d" * 32, (2**53 + 1).to_bytes(8, "big"), "a time above"),
    ],
)
def test_a_malformed_report_does_not_decode(digests: bytes, times: bytes, why: str) -> None:
    data = codec.dumps_plain({1: 1, 2: 5, 3: digests, 4: times})
    with pytest.raises(DecodeError, match=why):
        codec.decode(OrderReport, data)


def test_a_report_keeps_its_entries_in_the_order_seen() -> None:
    entries = [(bytes([i]) * 32, 1_000 - i) for i in range(5)]
    decoded = codec.decode(OrderReport, codec.encode(OrderReport.of(2, 7, entries)))
    assert list(decoded.entries) == entries
    assert decoded.times_by_digest() == dict(entries)


def test_a_node_knows_what_its_peers_reported_from_votes_and_from_blocks() -> None:
    leader, nodes = leader_with_reports({A: 10})
    assert leader.has_reported(0, A) and not leader.has_reported(0, B)
    data = leader.propose_payload(b"\x00" * 32, 2, 2, no_ancestors)
    assert data is not None
    replica = nodes[3]
    assert not replica.has_reported(0, A)  # it has seen no report of node 0 yet
    block = block_with(codec.decode(FairPayload, data))
    assert replica.validate_payload(block, b"\x01" * 32, no_ancestors)
    assert replica.has_reported(0, A) and not replica.has_reported(0, B)


def _reachable(root: object) -> int:
    """How many objects hang off ``root``, digests included (its memory, roughly)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def test_what_the_app_keeps_stays_bounded_however_long_it_commits() -> None:
    app = FairOrderingApp(NET.committee, 0, NET.keys[0], MedianTimestamp(4, 1), remembered=500)
    parent = NET.block(1, NET.genesis_qc)

    def commit(height: int) -> None:
        order = tuple(os.urandom(32) for _ in range(50))
        block = Block(height, height, 0, NET.qc(parent), codec.encode(FairPayload((), order, ())))
        app.on_commit(block, os.urandom(32))

    for height in range(2, 42):
        commit(height)
    after_40 = _reachable(app)
    for height in range(42, 242):
        commit(height)
    assert _reachable(app) <= after_40 * 1.05  # 10,000 more digests committed, none kept beyond 500
