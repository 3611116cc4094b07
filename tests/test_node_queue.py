"""A validator that floods the consensus driver with valid messages cannot crowd out the others."""

from __future__ import annotations

import pathlib

from ops.sim.node import LabelPayload
from ordering.messages import CONSENSUS, Vote, VoteData
from sequencer_net.node.driver import QUEUE_DEPTH, ConsensusDriver, Outboxes
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.storage import Store
from tests.cluster import ignored, rejections
from tests.factory import Net


async def _no_send(peer: int, data: bytes, protocol: str) -> bool:
    return True


def vote_frame(net: Net, signer: int, round_: int) -> bytes:
    signed = net.keys[signer].sign(VoteData(bytes(32), round_, round_), net.chain_id, signer)
    return CONSENSUS.encode(Vote(signed))


async def test_a_flooding_sender_gets_only_its_share_of_the_queue(tmp_path: pathlib.Path) -> None:
    net = Net(4)
    metrics = NodeMetrics()
    node = ConsensusDriver(
        net.committee,
        0,
        net.keys[0],
        LabelPayload("0"),
        Store(tmp_path / "node.db", net.chain_id),
        Outboxes([1, 2, 3], _no_send),
        metrics=metrics,
    )
    share = QUEUE_DEPTH // 4
    for round_ in range(1, share + 50):  # valid, signed votes: only the volume is hostile
        await node.on_frame(1, vote_frame(net, 1, round_))
    for round_ in range(1, 6):
        await node.on_frame(2, vote_frame(net, 2, round_))
    assert ignored(metrics.registry) == {("consensus", "sender-over-share"): 49.0}
    assert rejections(metrics.registry) == {}  # over its share proves nothing against it
    assert node._queued[1] == share and node._queued[2] == 5  # the honest sender got through
