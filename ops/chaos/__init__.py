"""``seqnet chaos``: break a running local cluster on purpose, then judge what it did.

A scenario file (:mod:`ops.chaos.scenario`) says which faults to inject into
real validator processes and when (:mod:`ops.chaos.faults`: SIGKILL and
restart, SIGSTOP and SIGCONT; on a test network, partitions, delay and loss,
and Byzantine behaviour through each validator's admin endpoint). While they happen, a load runs
(:mod:`ops.chaos.load`) and every node is watched from outside through its
public API, its ``/metrics`` and a verifying rollup subscription
(:mod:`ops.chaos.observe`); the result is a recorded history
(:mod:`ops.chaos.history`). Checkers, pure functions over that history
(:mod:`ops.chaos.checkers`), decide whether the cluster stayed safe and live
and lost nothing, each with the evidence behind its verdict; the report
(:mod:`ops.chaos.report`) draws it. :mod:`ops.chaos.runner` ties them together.
"""
