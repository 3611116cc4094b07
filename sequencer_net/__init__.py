"""seqnet: a decentralized shared sequencer.

``base`` is the ground floor every package shares (encoding, signing, the
committee); ``node`` is the validator process; ``cli`` the ``seqnet`` command.
"""

__version__ = "0.1.0"
