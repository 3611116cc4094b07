"""The admin endpoint of a test-network validator: faults and misbehaviour at run time.

Why: a chaos run switches partitions, loss, delay and Byzantine behaviour on
and off while the validators run, from outside, the way an operator would
reach a node. Only a genesis with ``params.test_network = 1`` allows it (a
production validator refuses the settings and never has these hooks); the
endpoint binds to a loopback address only and every request needs the token
of the cluster directory (``Authorization: Bearer <token>``).

    GET    /admin/faults         {"faults": [rule, ...]}  (see p2p.faults.LinkFault)
    PUT    /admin/faults         {"faults": [rule, ...]}  replaces every rule
    DELETE /admin/faults         heals every link
    GET    /admin/misbehaviour   {"withhold_shares": false, ...}
    PUT    /admin/misbehaviour   the same object (omitted fields: off)
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from p2p.faults import BadFault, FaultyLinks, LinkFault
from sequencer_net.node.byzantine import BadMisbehaviour, ByzantineOutbox, Misbehaviour, reordered

if TYPE_CHECKING:
    from sequencer_net.node.validator import Validator

MAX_ADMIN_BODY = 64 * 1024
Handler = Callable[[Request], Awaitable[Response]]


class NotATestNetwork(ValueError):
    """Test-only settings on a validator whose genesis is not a test network."""


@dataclass
class ChaosHooks:
    """What the admin endpoint turns: this node's link faults and its misbehaviour."""

    faults: FaultyLinks
    byzantine: ByzantineOutbox
    n: int


def admin_app(hooks: ChaosHooks, token: str) -> Starlette:
    """The admin routes, each behind the token."""

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"faults": [f.to_json() for f in hooks.faults.faults]})

    async def put_faults(request: Request) -> Response:
        doc = await _json(request)
        rules = doc.get("faults") if isinstance(doc, dict) else None
        if not isinstance(rules, list):
            raise BadFault('expected {"faults": [rule, ...]}')
        hooks.faults.set([LinkFault.from_json(rule, hooks.n) for rule in rules])
        return await get_faults(request)

    async def delete_faults(request: Request) -> Response:
        hooks.faults.set([])
        return await get_faults(request)

    async def get_misbehaviour(request: Request) -> Response:
        return JSONResponse(hooks.byzantine.mode.to_json())

    async def put_misbehaviour(request: Request) -> Response:
        doc = await _json(request)
        fixed = hooks.byzantine.mode.reorder_batches
        if isinstance(doc, dict) and doc.setdefault("reorder_batches", fixed) != fixed:
            raise BadMisbehaviour("reorder_batches: set in the node's config, at start only")
        mode = Misbehaviour.from_json(doc)
        hooks.byzantine.mode = mode
        return await get_misbehaviour(request)

    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"error": "missing or wrong admin token"}, status_code=401)
            try:
                return await handler(request)
            except (BadFault, BadMisbehaviour, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return run

    return Starlette(
        routes=[
            Route("/admin/faults", guarded(get_faults), methods=["GET"]),
            Route("/admin/faults", guarded(put_faults), methods=["PUT"]),
            Route("/admin/faults", guarded(delete_faults), methods=["DELETE"]),
            Route("/admin/misbehaviour", guarded(get_misbehaviour), methods=["GET"]),
            Route("/admin/misbehaviour", guarded(put_misbehaviour), methods=["PUT"]),
        ]
    )


async def _json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_ADMIN_BODY:
        raise ValueError(f"body over {MAX_ADMIN_BODY} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None


def install(v: Validator, misbehaviour: Misbehaviour) -> ChaosHooks:
    """Put the fault hook into ``v``'s host and the Byzantine filter on its outboxes."""
    if not v.genesis.is_test_network:
        raise NotATestNetwork(
            "admin endpoint and misbehaviour need a genesis with params.test_network = 1 "
            "(`seqnet keygen --test-network`)"
        )
    faults = v.host.inject_faults()
    byzantine = ByzantineOutbox(
        v.outboxes.post, v.peers, v.me, v.keys.signing_key, v.genesis.chain_id, misbehaviour
    )
    v.outboxes.post = byzantine.post  # type: ignore[method-assign]
    if misbehaviour.reorder_batches:  # the broken build: what it stores is what it serves
        save_batch = v.store.save_batch
        v.store.save_batch = lambda batch: save_batch(reordered(batch))  # type: ignore[method-assign]
    return ChaosHooks(faults, byzantine, v.genesis.n)
