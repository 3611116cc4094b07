"""A deterministic network simulator for the consensus core.

One seeded RNG, virtual time, a heap of events: thousands of adversarial runs
(drops, delays, partitions, crashes, Byzantine nodes, twins) take minutes and
any failure replays exactly from its seed.
"""
