"""What a node measures of the committee's order against its own arrival log."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from sequencer_net.node.observed import ArrivalLog, CertifyClock, inversions


@given(st.lists(st.integers(0, 20), max_size=60))
def test_inversions_count_the_pairs_out_of_order(times: list[int]) -> None:
    brute = sum(1 for a, b in itertools.combinations(times, 2) if a > b)
    assert inversions(times) == brute


def test_a_block_is_measured_against_what_arrived_here_and_when() -> None:
    log = ArrivalLog()
    log.arrived(b"a", 100, committed_height=5)
    log.arrived(b"b", 200, committed_height=5)
    log.arrived(b"c", 300, committed_height=6)
    log.arrived(b"a", 999, committed_height=9)  # a copy later: the first arrival counts
    view = log.committed([b"c", b"x", b"a", b"b"], height=8)  # x never reached us
    assert view.delays == [2, 3, 3]
    assert (view.inversions, view.pairs) == (2, 3)  # c before a and before b
    assert len(log) == 0  # measured once: forgotten


def test_the_arrival_log_is_bounded() -> None:
    log = ArrivalLog(max_tracked=3)
    for i in range(10):
        log.arrived(bytes([i]), i, 0)
    assert len(log) == 3
    assert log.committed([bytes([0]), bytes([9])], 1).delays == [1]  # the oldest went first


def test_certify_clock_hands_over_every_height_up_to_the_certified_one() -> None:
    clock = CertifyClock(max_heights=2)
    clock.decrypted(1, [("a", 1.0)])
    clock.decrypted(2, [])  # nothing submitted here: nothing held
    clock.decrypted(3, [("b", 3.0), ("a", 3.5)])
    assert clock.certified(2) == [("a", 1.0)]
    assert clock.certified(2) == []
    clock.decrypted(4, [("a", 4.0)])
    clock.decrypted(5, [("a", 5.0)])  # over the bound: height 3, the oldest, is dropped
    assert clock.certified(5) == [("a", 4.0), ("a", 5.0)]
