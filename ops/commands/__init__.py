"""The operator commands of ``seqnet`` (cluster, bench, sim).

Each module has ``add(subparsers)``; ``pyproject.toml`` registers them in the
``seqnet.commands`` entry point group, which the command line loads, so the
node's packages never import ``ops``.
"""
