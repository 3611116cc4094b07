"""``python -m sequencer_net.cli``: the ``seqnet`` command."""

import sys

from sequencer_net.cli import main

sys.exit(main())
