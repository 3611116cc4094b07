"""The validator node: the cores wired to libp2p, SQLite, timers, metrics and the HTTP API.

``validator.Validator`` assembles one node; ``run.run_node`` runs it as a
process. Each module is one part (see ``docs/architecture.md``): ``driver``
runs the consensus core, ``ingress`` admits transactions, ``decryption`` opens
committed batches, ``catchup`` syncs from peers' stores, ``storage`` is the
SQLite store, ``wire`` the node-level messages, ``api`` and ``metrics`` the
HTTP surfaces, ``genesis`` and ``config`` the files a node starts from.
"""
