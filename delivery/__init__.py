"""Rollup delivery: what a rollup needs to verify its slice of a batch without trusting a node.

Pure, like the other cores: a batch's namespaced Merkle tree and its proofs
(``nmt``), the header validators sign once a committed block is decrypted and
the quorum certificate over it (``header``), and the certified namespace batch
a node serves and a client verifies from the genesis alone (``batch``).
"""
