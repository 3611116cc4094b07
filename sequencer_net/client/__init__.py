"""Client code for talking to a node over its HTTP API: what programs and rollups use.

Nothing here runs a validator: it needs the genesis (for the threshold key
and the committee) and a node's API address, and speaks plain HTTP and
WebSocket (or libp2p gossip as a peer of its own), exactly as any outside
program would. A trio program submits with :func:`submit`. A rollup follows its certified batches
with :func:`subscribe`, verifying each from the genesis alone.
A submitter checks where its transaction was ordered, and that this is
final, with :func:`fetch_receipt`.
"""

from sequencer_net.client.encrypt import Sealed, seal
from sequencer_net.client.http import ClientError, get_json, post
from sequencer_net.client.receipt import fetch_receipt
from sequencer_net.client.submit import submit, submit_and_wait
from sequencer_net.client.subscribe import Subscription, fetch_batch, subscribe

__all__ = [
    "ClientError",
    "Sealed",
    "Subscription",
    "fetch_batch",
    "fetch_receipt",
    "get_json",
    "post",
    "seal",
    "submit",
    "submit_and_wait",
    "subscribe",
]
