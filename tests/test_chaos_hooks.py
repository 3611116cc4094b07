"""Faults and misbehaviour on purpose: the link rules, the Byzantine filter, the admin
endpoint of a test-network validator (real processes), and who may use them."""

from __future__ import annotations

import json
import pathlib
import random
import urllib.error
import urllib.request
from typing import Any

import pytest
import trio

from mev import group, kem
from mev.shares import ShareBatch
from ops.health import metric_samples
from ordering.fair.app import FairPayload
from ordering.fair.reports import OrderReport
from ordering.messages import (
    CONSENSUS,
    Block,
    Proposal,
    ProposalData,
    Vote,
    VoteData,
    block_hash,
    genesis_qc,
)
from p2p.faults import BadFault, FaultyLinks, LinkFault
from p2p.host import CONSENSUS_PROTOCOL, SHARES_PROTOCOL, TX_PROTOCOL
from sequencer_net.base import codec
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import Signed, SigningKey
from sequencer_net.node.admin import NotATestNetwork
from sequencer_net.node.byzantine import (
    WRONG_SHARE,
    BadMisbehaviour,
    ByzantineOutbox,
    Misbehaviour,
)
from sequencer_net.node.config import ConfigError, NodeConfig
from sequencer_net.node.genesis import create
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Settings, Validator
from sequencer_net.node.wire import SHARES, ShareRequest
from tests.cluster import Processes, encrypted, post_tx, wait_until

# ------------------------------------------------------------ link faults


class Wire:
    """Where frames that pass the rules arrive, with the time they did."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, int, bytes, str]] = []

    async def send(self, to: int, payload: bytes, protocol: str) -> bool:
        self.frames.append((trio.current_time(), to, payload, protocol))
        return True


async def test_cut_and_loss_drop_frames_the_sender_thinks_left() -> None:
    wire = Wire()
    links = FaultyLinks(wire.send, random.Random(1))
    links.set([LinkFault(peer=1, cut=True), LinkFault(protocol="tx", loss=0.5)])
    for _ in range(200):
        assert await links.send(1, b"c", CONSENSUS_PROTOCOL)  # cut: all lost
        assert await links.send(2, b"t", TX_PROTOCOL)  # about half lost
        assert await links.send(2, b"c", CONSENSUS_PROTOCOL)  # no rule: all pass
    to_2 = [(payload, to) for _, to, payload, _ in wire.frames]
    assert (b"c", 1) not in to_2
    assert to_2.count((b"c", 2)) == 200 and 60 < to_2.count((b"t", 2)) < 140
    links.set([])  # healed
    await links.send(1, b"again", CONSENSUS_PROTOCOL)
    assert wire.frames[-1][1:3] == (1, b"again")


async def test_the_most_specific_rule_wins() -> None:
    links = FaultyLinks(Wire().send)
    everything, to_one = LinkFault(cut=True), LinkFault(peer=1, delay_ms=5)
    one_tx = LinkFault(peer=1, protocol="tx", loss=0.25)
    links.set([everything, to_one, one_tx])
    assert links.rule_for(1, TX_PROTOCOL) == one_tx
    assert links.rule_for(1, SHARES_PROTOCOL) == to_one
    assert links.rule_for(2, TX_PROTOCOL) == everything


async def test_delayed_frames_arrive_late_in_order_without_waiting_for_each_other() -> None:
    wire = Wire()
    links = FaultyLinks(wire.send)
    links.set([LinkFault(peer=1, delay_ms=200)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(links.run)
        start = trio.current_time()
        for k in range(20):
            await links.send(1, b"%d" % k, CONSENSUS_PROTOCOL)  # returns at once
        await links.send(2, b"undelayed", CONSENSUS_PROTOCOL)
        assert [f[2] for f in wire.frames] == [b"undelayed"]
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    late = [f for f in wire.frames if f[1] == 1]
    assert [f[2] for f in late] == [b"%d" % k for k in range(20)]
    assert all(0.2 <= t - start < 0.28 for t, *_ in late)  # one delay, not twenty


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"peer": 9}, "peer"),
        ({"protocol": "gossip"}, "protocol"),
        ({"loss": 1.5}, "loss"),
        ({"delay_ms": -1}, "delay_ms"),
        ({"cut": "yes"}, "cut"),
        ({"drop": True}, "unknown"),
        ([], "object"),
    ],
)
def test_a_bad_rule_is_refused_with_the_field_named(rule: Any, problem: str) -> None:
    with pytest.raises(BadFault, match=problem):
        LinkFault.from_json(rule, n=4)


# ------------------------------------------------------------ the Byzantine filter

KEY = SigningKey.derive("byzantine-test/0")


def filtered(mode: Misbehaviour) -> tuple[ByzantineOutbox, list[tuple[int, bytes, str]]]:
    sent: list[tuple[int, bytes, str]] = []
    outbox = ByzantineOutbox(
        lambda peer, data, protocol: sent.append((peer, data, protocol)), [1, 2, 3], 0, KEY, "c"
    )
    outbox.mode = mode
    return outbox, sent


def share_batch(*shares: bytes) -> ShareBatch:
    return ShareBatch(0, b"\x01" * 32, shares, b"\x05" * 32, b"\x06" * 32)


def test_withheld_shares_never_leave_and_requests_still_do() -> None:
    outbox, sent = filtered(Misbehaviour(withhold_shares=True))
    outbox.post(1, SHARES.encode(share_batch(group.base_mul(3))), SHARES_PROTOCOL)
    request = SHARES.encode(ShareRequest(3, b"\x01" * 32))
    outbox.post(1, request, SHARES_PROTOCOL)
    assert sent == [(1, request, SHARES_PROTOCOL)]


def test_corrupt_shares_keep_their_shape_and_lose_their_worth() -> None:
    outbox, sent = filtered(Misbehaviour(corrupt_shares=True))
    real = share_batch(group.base_mul(3), group.base_mul(4))
    outbox.post(2, SHARES.encode(real), SHARES_PROTOCOL)
    ((_, data, _),) = sent
    out = SHARES.decode(data)
    assert isinstance(out, ShareBatch) and out.batch_id == real.batch_id
    assert out.shares == (WRONG_SHARE, WRONG_SHARE)


def test_lying_reports_are_validly_signed_with_the_times_turned_around() -> None:
    outbox, sent = filtered(Misbehaviour(lie_reports=True))
    report = OrderReport.of(0, 7, [(b"a" * 32, 100), (b"b" * 32, 200), (b"c" * 32, 300)])
    signed = codec.encode(KEY.sign(report, "c", 0), Signed[OrderReport])
    vote = Vote(KEY.sign(VoteData(b"\x02" * 32, 3, 3), "c", 0), signed)
    outbox.post(1, CONSENSUS.encode(vote), CONSENSUS_PROTOCOL)
    ((_, data, _),) = sent
    out = CONSENSUS.decode(data)
    assert isinstance(out, Vote) and out.signed == vote.signed
    lie: Signed[OrderReport] = codec.decode(Signed[OrderReport], out.report)
    assert lie.statement.digest_list() == report.digest_list()
    assert lie.statement.time_list() == [300, 200, 100]
    assert lie.verify(Committee.of("c", [KEY.public_key])).statement == lie.statement  # own key


def proposal_of(payload: FairPayload) -> Proposal:
    block = Block(2, 1, 0, genesis_qc("c"), codec.encode(payload))
    return Proposal(block, None, KEY.sign(ProposalData(1, block_hash(block)), "c", 0))


def sent_payload(frame: bytes) -> FairPayload:
    proposal = CONSENSUS.decode(frame)
    assert isinstance(proposal, Proposal)
    statement = ProposalData(proposal.block.round, block_hash(proposal.block))
    assert proposal.signed.statement == statement  # re-signed: it is the leader's own block
    return codec.decode(FairPayload, proposal.block.payload)


def test_a_censoring_or_equivocating_leader_rewrites_its_own_proposals() -> None:
    genesis, _ = create(4, chain_id="c")
    txs = (encrypted(genesis, "rollup-a", b"kept"), encrypted(genesis, "rollup-b", b"censored"))
    payload = FairPayload((), tuple(kem.digest_of_encoding(t) for t in txs), txs)
    outbox, sent = filtered(Misbehaviour(censor="rollup-b", equivocate=True))
    for peer in (1, 2):
        outbox.post(peer, CONSENSUS.encode(proposal_of(payload)), CONSENSUS_PROTOCOL)
    to_1, to_2 = (sent_payload(frame) for _, frame, _ in sent)
    assert to_1 == FairPayload((), (), ())  # the conflicting block, to every other peer
    assert to_2.txs == txs[:1] and to_2.order == payload.order[:1]


async def test_garbage_goes_to_every_peer_on_every_protocol() -> None:
    outbox, sent = filtered(Misbehaviour(garbage=True))
    with trio.move_on_after(0.25):
        await outbox.run()
    assert {(peer, protocol) for peer, _, protocol in sent} == {
        (p, proto)
        for p in (1, 2, 3)
        for proto in (CONSENSUS_PROTOCOL, TX_PROTOCOL, SHARES_PROTOCOL)
    }


@pytest.mark.parametrize(
    ("doc", "problem"),
    [({"censor": 5}, "censor"), ({"garbage": "on"}, "garbage"), ({"fork": True}, "unknown")],
)
def test_a_bad_misbehaviour_is_refused(doc: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadMisbehaviour, match=problem):
        Misbehaviour.from_json(doc)


# ------------------------------------------------------------ who may use them


def test_a_production_genesis_refuses_misbehaviour(tmp_path: pathlib.Path) -> None:
    genesis, keys = create(4, chain_id="prod")
    store = Store(tmp_path / "n.db", "prod")
    with pytest.raises(NotATestNetwork, match="test_network"):
        Validator(genesis, keys[0], store, Settings(misbehaviour=Misbehaviour(garbage=True)))
    store.close()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('admin = "0.0.0.0:9999"\nadmin_token_file = "t"\n', "loopback"),
        ('admin = "10.1.2.3:9999"\nadmin_token_file = "t"\n', "loopback"),
        ('admin = "127.0.0.1:9999"\n', "admin_token_file"),
        ('misbehaviour = "yes"\n', "misbehaviour"),
    ],
)
def test_careless_admin_settings_are_refused(
    tmp_path: pathlib.Path, extra: str, problem: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text('genesis = "g"\nkeys = "k"\ndatabase = "d"\n' + extra)
    with pytest.raises(ConfigError, match=problem):
        NodeConfig.load(path)


# ------------------------------------------------------------ the admin endpoint, for real


def admin(c: Processes, i: int, method: str, path: str, body: Any = None, token: str | None = None):
    """(status, JSON answer) of node ``i``'s admin endpoint."""
    token = token if token is not None else (c.dir / "admin-token").read_text().strip()
    request = urllib.request.Request(
        f"http://{c.members[i].admin}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def shares_from(c: Processes, i: int, sender: int) -> float:
    samples = metric_samples(c.members[i], "seqnet_decryption_shares_received_total")
    return sum(s.value for s in samples if s.labels["sender"] == str(sender))


def decrypt_some(c: Processes, count: int = 5) -> None:
    """Submit ``count`` transactions to node 1; wait until every node decrypted them."""
    start = [decrypted(c, i) for i in range(c.n)]
    for k in range(count):
        assert post_tx(c.api(1), encrypted(c.genesis, "rollup-a", b"tx %d" % k))[0] == 202
    wait_until(lambda: all(decrypted(c, i) >= start[i] + count for i in range(c.n)), 30)


def decrypted(c: Processes, i: int) -> float:
    samples = metric_samples(c.members[i], "seqnet_transactions_decrypted_total")
    return sum(s.value for s in samples)


def test_a_node_cut_off_through_the_admin_endpoint_stalls_and_catches_up_when_healed(
    tmp_path: pathlib.Path,
) -> None:
    c = Processes(tmp_path, test_network=True)
    c.start_all()
    try:
        c.wait_committing()
        assert admin(c, 3, "GET", "/admin/faults", token="wrong")[0] == 401
        assert admin(c, 3, "PUT", "/admin/faults", {"faults": [{"peer": 7}]})[0] == 400
        for i in range(3):  # both directions: 3 sends nothing, the others send 3 nothing
            assert (
                admin(c, i, "PUT", "/admin/faults", {"faults": [{"peer": 3, "cut": True}]})[0]
                == 200
            )
        status, answer = admin(c, 3, "PUT", "/admin/faults", {"faults": [{"cut": True}]})
        assert status == 200 and answer["faults"][0]["cut"] is True
        trio.run(trio.sleep, 1.5)  # what was in flight lands
        cut_at = c.height(3)
        wait_until(lambda: c.height(0) >= cut_at + 20, 30)  # the other three go on
        assert c.height(3) <= cut_at + 1
        for i in range(4):
            assert admin(c, i, "DELETE", "/admin/faults")[1] == {"faults": []}
        wait_until(lambda: c.height(3) >= c.height(0) - 2, 30)  # caught up
        # a validator that withholds its decryption shares: the others see it by sender
        decrypt_some(c)
        assert all(shares_from(c, i, 0) > 0 for i in (1, 2, 3))  # it shared so far
        status, mode = admin(c, 0, "PUT", "/admin/misbehaviour", {"withhold_shares": True})
        assert status == 200 and mode["withhold_shares"] is True
        trio.run(trio.sleep, 1.0)
        before = [[shares_from(c, i, s) for s in range(4)] for i in (1, 2, 3)]
        decrypt_some(c)  # still decrypted: t = 2 of the other three share
        after = [[shares_from(c, i, s) for s in range(4)] for i in (1, 2, 3)]
        assert [row[0] for row in after] == [row[0] for row in before]  # nothing from 0
        assert after[0][2] > before[0][2] and after[2][2] > before[2][2]  # 2 still shares
    finally:
        c.stop_all()
    assert c.exit_codes == [0, 0, 0, 0]


def committed_hash(c: Processes, i: int, height: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{c.api(i)}/v1/blocks/{height}", timeout=5) as answer:
            return str(json.loads(answer.read())["block_hash"])
    except urllib.error.HTTPError:
        return None


def batch_digests(c: Processes, i: int, height: int) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"http://{c.api(i)}/v1/batches/{height}", timeout=5) as answer:
            return [tx["digest"] for tx in json.loads(answer.read())["transactions"]]
    except urllib.error.HTTPError:
        return None


def test_a_broken_build_serves_a_history_of_its_own_and_the_api_shows_it(
    tmp_path: pathlib.Path,
) -> None:
    """The deliberately broken build (node 3 stores batches reversed): the chain agrees
    (``/v1/blocks``), the delivered batches do not (``/v1/batches``), and its headers
    never gather a quorum. What a chaos checker must report, shown by hand first."""
    c = Processes(tmp_path, test_network=True)
    config = tmp_path / "node-3.toml"
    config.write_text(config.read_text() + "misbehaviour = {reorder_batches = true}\n")
    c.start_all()
    try:
        c.wait_committing()
        status, mode = admin(c, 3, "PUT", "/admin/misbehaviour", {"garbage": False})
        assert status == 200 and mode["reorder_batches"] is True  # kept: fixed at start
        assert admin(c, 3, "PUT", "/admin/misbehaviour", {"reorder_batches": False})[0] == 400
        decrypt_some(c, count=20)
        top = min(c.height(i) for i in range(4))
        heights = [h for h in range(1, top + 1) if len(batch_digests(c, 0, h) or []) >= 2]
        assert heights, "no height with two transactions to tell the orders apart"
        for h in heights:
            honest = batch_digests(c, 0, h)
            assert batch_digests(c, 1, h) == honest == batch_digests(c, 2, h)
            assert batch_digests(c, 3, h) == list(reversed(honest or []))
            assert len({committed_hash(c, i, h) for i in range(4)}) == 1  # one chain
        assert c.certified(3) < min(heights) <= c.certified(0)
    finally:
        c.stop_all()
