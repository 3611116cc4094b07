"""Dealerless key generation: agreement with f Byzantine dealers, and keys that work."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mev import group, kem
from mev.combine import open_batch
from mev.committed import CommittedBatch, EncryptedBatch, is_well_formed
from mev.dkg import (
    Complaint,
    Dealing,
    Dkg,
    Finished,
    Justification,
    Phase,
    PhaseEnded,
    Posted,
    PostMessage,
    PrivatelyReceived,
    PrivateShare,
)
from mev.shares import make_share_batch
from ops.sim.dkg import BEHAVIOURS, run_dkg
from ordering.validation import MessageValidator
from sequencer_net.base import codec
from tests.factory import Net, commit_of


@pytest.mark.parametrize("n", [4, 7, 10])
def test_dkg_agrees_with_f_byzantine_dealers(n: int) -> None:
    seen: set[str] = set()
    for seed in range(12):
        run = run_dkg(seed, n)
        assert run.ok, f"seed {seed} n={n} {run.byzantine}: {run.violations}"
        seen.update(run.byzantine.values())
    assert seen == set(BEHAVIOURS) or n == 4  # n=4 has one Byzantine dealer per run


def test_every_behaviour_is_survived() -> None:
    for behaviour in BEHAVIOURS:
        for seed in range(4):
            run = run_dkg(seed, 7, behaviours=(behaviour,))
            assert run.ok, f"{behaviour} seed {seed}: {run.violations}"


def test_the_generated_key_encrypts_and_t_shares_decrypt() -> None:
    run = run_dkg(3, 7)
    result = next(iter(run.results.values()))
    honest = [i for i in range(7) if i not in run.byzantine]
    net = Net(7)
    ct = kem.encrypt(
        result.public, net.chain_id, "rollup-a", b"secret", group.seeded_random_bytes(b"k")
    )
    commit = commit_of(net, codec.encode(EncryptedBatch((ct,))))

    def valid(ct: kem.Ciphertext, _: bytes) -> bool:
        return is_well_formed(result.public, net.chain_id, ct)

    batch = CommittedBatch.from_commit(commit, MessageValidator(net.committee), valid)
    shares = {i: make_share_batch(run.results[i].share, result.public, batch) for i in honest[-3:]}
    opening = open_batch(result.public, net.chain_id, batch.batch_id, [ct], shares)
    assert opening.plaintexts == [b"secret"]


def _dealer_and_peer() -> tuple[Dkg, Dkg, list[PostMessage]]:
    dealer, peer = Dkg(4, 2, 0), Dkg(4, 2, 1)
    actions = dealer.start(group.seeded_random_bytes(b"dealer"))
    peer.start(group.seeded_random_bytes(b"peer"))
    posts = [a for a in actions if isinstance(a, PostMessage)]
    return dealer, peer, posts


def test_a_second_different_dealing_disqualifies_the_dealer() -> None:
    _, peer, posts = _dealer_and_peer()
    dealing = posts[0].message
    assert isinstance(dealing, Dealing)
    peer.handle(Posted(0, dealing))
    peer.handle(Posted(0, Dealing(0, tuple(reversed(dealing.commitments)))))
    assert peer.disqualified == {0: "two different dealings"}


def test_posts_on_someone_elses_behalf_are_ignored() -> None:
    _, peer, posts = _dealer_and_peer()
    peer.handle(Posted(2, posts[0].message))
    assert 0 not in peer.dealings


def test_a_wrong_share_is_complained_about_and_a_valid_answer_is_adopted() -> None:
    dealer, peer, posts = _dealer_and_peer()
    peer.handle(Posted(0, posts[0].message))
    peer.handle(PrivatelyReceived(0, PrivateShare(0, 1, group.scalar_bytes(5))))
    (complaint,) = peer.handle(PhaseEnded(Phase.DEAL))
    assert complaint == PostMessage(Complaint(1, 0))
    dealer.handle(Posted(0, posts[0].message))
    dealer.handle(PhaseEnded(Phase.DEAL))
    (answer,) = dealer.handle(Posted(1, Complaint(1, 0)))
    peer.handle(Posted(1, Complaint(1, 0)))
    peer.handle(Posted(0, answer.message))
    assert peer.answered == {0: {1}} and 0 in peer.shares


def test_an_unanswered_or_wrong_answer_disqualifies() -> None:
    _, peer, posts = _dealer_and_peer()
    peer.handle(Posted(0, posts[0].message))
    peer.handle(PhaseEnded(Phase.DEAL))  # no private share arrived: complain
    peer.handle(Posted(1, Complaint(1, 0)))
    peer.handle(Posted(0, Justification(0, 1, group.scalar_bytes(5))))
    assert peer.disqualified[0].startswith("bad justification")
    peer.handle(PhaseEnded(Phase.COMPLAIN))
    (done,) = peer.handle(PhaseEnded(Phase.JUSTIFY))
    assert not isinstance(done, Finished)  # 1 qualified dealer < t = 2


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([Dealing, PrivateShare, Complaint, Justification]))
def test_dkg_message_decoders_reject_garbage_with_the_typed_error(data: bytes, cls: type) -> None:
    with contextlib.suppress(codec.DecodeError):
        codec.decode(cls, data)
