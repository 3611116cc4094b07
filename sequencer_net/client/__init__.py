"""Client code for talking to a node over its HTTP API: what programs and rollups use.

Nothing here runs a node: it needs the genesis (for the threshold key) and a
node's API address, and speaks plain HTTP, exactly as any outside program would.
"""

from sequencer_net.client.encrypt import Sealed, seal
from sequencer_net.client.http import ClientError, get_json, post
from sequencer_net.client.submit import submit_and_wait

__all__ = ["ClientError", "Sealed", "get_json", "post", "seal", "submit_and_wait"]
