"""Example rollups: small programs that follow their namespace on seqnet and compute a state.

Each is a pure state transition function over the plaintexts of one verified
batch (``token_ledger``, ``name_registry``) and a shared runner (``rollup``)
that subscribes with ``sequencer_net.client`` and prints the state root per
height. See ``examples/README.md``.
"""
