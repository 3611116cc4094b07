"""seqnet: a decentralized shared sequencer.

This package holds the node, its CLI and the foundations every other package
shares (canonical encoding, signing, the committee). Keep this module light:
the pure cores in ``ordering`` and ``mev`` import from here.
"""

__version__ = "0.1.0"
