"""Validators certify what each committed block decrypted to: batch votes and certificates.

Theory of operation
-------------------
Consensus certifies a block before anyone can read it; what it *opened to* is
certified here, after decryption. Each time decryption stores a batch, the
:class:`Attestation` service takes the stored batches above its last header in
height order and, for each, builds the :class:`~delivery.header.BatchHeader`
(namespace root and leaf count of its transactions, the committed block's
hash, and the hash of the header one height below — the genesis batch hash at
height 1), stores it, signs it and sends the signature (:class:`BatchVote`) to
every peer. Decryption is deterministic, so honest validators sign identical
headers; a quorum of identical signed headers is a
:class:`~delivery.header.BatchCertificate` (signatures sorted by signer), stored
beside the header. ``certified_height`` is the highest height with every height
up to it certified; ``wait_certified`` waits for it to reach a height.

A peer's vote is checked before it is kept: the signer must be the sender
(``wrong-sender``), the header for this chain (``wrong-chain``), the signature
valid (``bad-signature``). A validator that signs two different headers for one
height equivocates (``header-equivocation``): both signed headers are stored as
evidence and only the first is ever counted. Votes are held only for heights
not certified yet, at most ``MAX_HEIGHTS`` of them, and only up to ``AHEAD``
heights past what this node decrypted (``vote-ahead``); a vote for a height
already certified is ``vote-late``.

Votes get lost (full outbound queues, a restart loses what was held in
memory). So a height still without a certificate ``REQUEST_AFTER_S`` after this
node signed it is asked for with a :class:`CertificateRequest` to every peer,
again every ``REQUEST_AFTER_S`` while it is missing (one request per height at a
time, at most ``REQUESTS_PER_ROUND`` heights at once). A peer answers with its
certificate (:class:`CertificateReply`) or, lacking one, with its own vote again
(ed25519 signatures are deterministic: signing the stored header again gives
the same vote), so even a committee that restarted at once certifies every
height. A reply is taken only for a height asked for, only if
``verify_certificate`` holds and only if it certifies the header this node
signed. A valid certificate of a *different* header — a quorum signed what this
node did not decrypt — is a serious fault: it is logged as an error, kept as
evidence, counted in ``seqnet_batch_certificates_disputed_total`` and never
stored as the height's certificate (the same holds for one that came with a
synced block and does not match once this node has opened that block).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from delivery.header import (
    BatchCertificate,
    BatchHeader,
    Unverified,
    batch_hash,
    genesis_batch_hash,
    verify_certificate,
)
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import BadSignature, Signed, SigningKey
from sequencer_net.node.batches import header_of
from sequencer_net.node.logs import event
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.storage import Store
from sequencer_net.node.wire import (
    SHARES,
    AttestationMessage,
    BatchVote,
    CertificateReply,
    CertificateRequest,
    DecryptedBatch,
)

log = logging.getLogger("seqnet.attest")
PROTOCOL = "shares"  # the metrics label: these messages travel on /seqnet/shares/1
AHEAD = 1024  # votes for heights further past what we decrypted are ignored
MAX_HEIGHTS = 1024  # uncertified heights whose votes are held at once
REQUEST_AFTER_S = 2.0  # no certificate this long after signing: ask peers (and again as often)
REQUESTS_PER_ROUND = 64  # heights asked for at once

Post = Callable[[int, bytes], None]
SignedHeader = Signed[BatchHeader]


@dataclass(slots=True)
class _Height:
    """The votes held for one uncertified height."""

    own: BatchHeader | None = None  # what this node signed, once it has opened the block
    votes: dict[int, SignedHeader] = field(default_factory=dict)  # first vote of each signer
    equivocators: set[int] = field(default_factory=set)


class Attestation:
    """Signs the header of every decrypted batch, collects peers' votes, keeps certificates."""

    def __init__(
        self,
        committee: Committee,
        me: int,
        key: SigningKey,
        store: Store,
        peers: list[int],
        post: Post,
        metrics: NodeMetrics,
        on_certified: Callable[[int], None] | None = None,
    ) -> None:
        """``on_certified(h)``: every height up to ``h`` is now certified."""
        self.committee, self.me, self.key, self.store = committee, me, key, store
        self._on_certified = on_certified
        self.chain_id = committee.chain_id
        self.peers, self._post, self.metrics = peers, post, metrics
        self.certified_height = store.certified_height()
        self.equivocations = 0  # (height, validator) pairs caught signing two headers
        self._tip = store.header_tip()  # highest height this node signed
        self._signed_before_start = self._tip  # their votes died with the last process
        self._decrypted = store.decrypted_tip()
        self._pending: dict[int, _Height] = {}
        self._done: set[int] = set()  # certified heights above certified_height
        self._disputed: set[int] = set()  # heights with a certificate of another header
        self._asked: dict[int, float] = {}  # uncertified height -> when signed or last asked
        self._wake = trio.Event()
        self._progress = trio.Event()
        metrics.certified_height.set(self.certified_height)

    # ------------------------------------------------------------ inputs

    def on_decrypted(self, batch: DecryptedBatch) -> None:
        """A batch was stored: sign its header (and any stored before it) soon."""
        self._decrypted = max(self._decrypted, batch.height)
        self._wake.set()

    def on_message(self, sender: int, message: AttestationMessage) -> None:
        """A peer's vote, certificate request or certificate reply (decoded, not checked)."""
        if isinstance(message, BatchVote):
            self._on_vote(sender, message.signed)
        elif isinstance(message, CertificateRequest):
            self._on_request(sender, message.height)
        else:
            self._on_reply(message.certificate)

    async def wait_certified(self, height: int) -> None:
        """Return once every height up to ``height`` is certified."""
        while self.certified_height < height:
            await self._progress.wait()

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Sign every stored batch's header in height order; ask for missing certificates."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._request_loop)
            self._wake.set()  # batches stored before a restart (or by an older version)
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while (made := await trio.to_thread.run_sync(self._sign_next)) is not None:
                    self._signed(*made)

    def _sign_next(self) -> tuple[SignedHeader, BatchCertificate | None] | None:
        """(worker thread) Header, store and sign the next stored batch; None if not stored yet.

        Also the certificate a synced block brought for that height, if any.
        """
        height = self._tip + 1
        if height > self._decrypted:
            return None  # stored, but decryption has not said so yet (it counts first)
        batch = self.store.batch(height)
        if batch is None:
            return None
        before = self.store.header(height - 1)
        parent = genesis_batch_hash(self.chain_id) if before is None else batch_hash(before)
        header = header_of(self.chain_id, batch, parent)
        self.store.save_header(header)  # refuses a header that does not extend ours
        signed = self.key.sign(header, self.chain_id, self.me)
        return signed, self.store.certificate_on_file(height)

    def _signed(self, signed: SignedHeader, on_file: BatchCertificate | None) -> None:
        header = signed.statement
        height = self._tip = header.height
        if on_file is not None:
            if on_file.header == header:
                self._certified(height)  # came with the synced block: peers have it already
                return
            self._dispute(on_file, "synced")
        self._broadcast(BatchVote(signed))
        self._asked[height] = trio.current_time()
        entry = self._entry(height, signed)
        if entry is None:
            return  # too many heights held; the request loop asks for it
        self._try_certify(height, entry)

    async def _request_loop(self) -> None:
        """Every ``REQUEST_AFTER_S / 4``: ask peers for heights uncertified that long."""
        while True:
            await trio.sleep(REQUEST_AFTER_S / 4)
            heights = await trio.to_thread.run_sync(
                self.store.uncertified_heights, self.certified_height, REQUESTS_PER_ROUND
            )
            now = trio.current_time()
            due = now - REQUEST_AFTER_S  # signed before a restart: ask (and re-vote) at once
            asked = {
                h: self._asked.get(h, due if h <= self._signed_before_start else now)
                for h in heights
            }
            for height, since in asked.items():
                if now - since >= REQUEST_AFTER_S and height not in self._disputed:
                    self._broadcast(CertificateRequest(height))
                    asked[height] = now
            self._asked = asked

    # ------------------------------------------------------------ votes

    def _on_vote(self, sender: int, signed: SignedHeader) -> None:
        header = signed.statement
        height = header.height
        if signed.signer != sender:
            return self.metrics.reject(PROTOCOL, "wrong-sender")
        if header.chain_id != self.chain_id:
            return self.metrics.reject(PROTOCOL, "wrong-chain")
        if height <= self.certified_height or height in self._done:
            return self.metrics.ignore(PROTOCOL, "vote-late")
        if height > max(self._decrypted, self._tip) + AHEAD:
            return self.metrics.ignore(PROTOCOL, "vote-ahead")
        entry = self._pending.get(height)
        held = entry.votes.get(sender) if entry is not None else None
        if held is not None and held.statement == header:
            return self.metrics.ignore(PROTOCOL, "vote-duplicate")
        try:
            signed.verify(self.committee)
        except BadSignature:
            return self.metrics.reject(PROTOCOL, "bad-signature")
        if entry is not None and held is not None:
            return self._equivocation(entry, held, signed)
        entry = self._entry(height)
        if entry is None:
            return self.metrics.ignore(PROTOCOL, "busy")
        entry.votes[sender] = signed
        self._try_certify(height, entry)

    def _equivocation(self, entry: _Height, first: SignedHeader, second: SignedHeader) -> None:
        """Two valid signatures of one validator on different headers for one height."""
        self.metrics.reject(PROTOCOL, "header-equivocation")
        if first.signer in entry.equivocators:
            return  # evidence kept already
        entry.equivocators.add(first.signer)
        self.equivocations += 1
        self.store.save_equivocation(first, second)
        event(log, "header-equivocation", logging.WARNING,
              height=first.statement.height, validator=first.signer)  # fmt: skip

    def _entry(self, height: int, own: SignedHeader | None = None) -> _Height | None:
        """The votes held for ``height`` (made if needed), with this node's own vote if it
        signed there; None when too many heights are held.

        The highest heights give way: they are the least urgent, and the
        request loop gets their votes again.
        """
        entry = self._pending.get(height)
        if entry is None:
            entry = self._pending[height] = _Height()
            if own is None and height <= self._tip:  # a restart, or its entry gave way
                header = self.store.header(height)
                own = None if header is None else self.key.sign(header, self.chain_id, self.me)
        if own is not None:
            entry.own, entry.votes[self.me] = own.statement, own
        while len(self._pending) > MAX_HEIGHTS:
            del self._pending[max(self._pending)]
        return self._pending.get(height)

    def _try_certify(self, height: int, entry: _Height) -> None:
        """Store a certificate once a quorum signed the header this node signed."""
        if entry.own is None:
            return  # not opened here yet: nothing to compare with
        by_header: dict[BatchHeader, list[tuple[int, bytes]]] = {}
        for signer, vote in entry.votes.items():
            by_header.setdefault(vote.statement, []).append((signer, vote.signature))
        for header, signatures in by_header.items():
            if len(signatures) < self.committee.quorum:
                continue
            cert = BatchCertificate(header, tuple(sorted(signatures)))
            if header == entry.own:
                self._store(cert)
                return
            self._dispute(cert, "votes")

    # ------------------------------------------------------------ certificates

    def _on_request(self, sender: int, height: int) -> None:
        """Send our certificate of ``height``, or else our vote for it again."""
        if height > self._tip:
            return self.metrics.ignore(PROTOCOL, "unknown-height")  # not opened here yet
        cert = self.store.batch_certificate(height)
        if cert is not None:
            self.metrics.served.labels("certificates").inc()
            self._post(sender, SHARES.encode(CertificateReply(cert)))
            return
        entry = self._pending.get(height)
        vote = entry.votes.get(self.me) if entry is not None else None
        if vote is None:
            own = self.store.header(height)
            if own is None:
                return self.metrics.ignore(PROTOCOL, "unknown-height")
            vote = self.key.sign(own, self.chain_id, self.me)
        self._post(sender, SHARES.encode(BatchVote(vote)))

    def _on_reply(self, cert: BatchCertificate) -> None:
        height = cert.header.height
        if height not in self._asked or height in self._done or height <= self.certified_height:
            return self.metrics.ignore(PROTOCOL, "certificate-unrequested")
        try:
            verify_certificate(self.committee, cert)
        except Unverified as exc:
            return self.metrics.reject(PROTOCOL, exc.reason)
        entry = self._pending.get(height)
        own = entry.own if entry is not None else None
        if own is None:
            own = self.store.header(height)
        if own is None:
            return self.metrics.ignore(PROTOCOL, "certificate-unrequested")
        if cert.header != own:
            return self._dispute(cert, "reply")
        self._store(cert)

    def _store(self, cert: BatchCertificate) -> None:
        self.store.save_batch_certificate(cert)
        self._certified(cert.header.height)

    def _certified(self, height: int) -> None:
        """``height`` has a stored certificate of the header this node signed."""
        self.metrics.batch_certificates.inc()
        self._pending.pop(height, None)
        self._asked.pop(height, None)
        if height != self.certified_height + 1:
            self._done.add(height)
            while len(self._done) > MAX_HEIGHTS:
                self._done.discard(max(self._done))  # only a filter for late votes
            return
        self.certified_height = self.store.certified_height(above=height)
        self._done = {h for h in self._done if h > self.certified_height}
        self._disputed = {h for h in self._disputed if h > self.certified_height}
        self.metrics.certified_height.set(self.certified_height)
        if self._on_certified is not None:
            self._on_certified(self.certified_height)
        self._progress.set()
        self._progress = trio.Event()

    def _dispute(self, cert: BatchCertificate, how: str) -> None:
        """A valid certificate of a header this node did not sign: a serious fault."""
        height = cert.header.height
        if height in self._disputed:
            return
        if len(self._disputed) < MAX_HEIGHTS:
            self._disputed.add(height)
        self.metrics.disputed_certificates.inc()
        self.store.save_disputed_certificate(cert)
        event(log, "certificate-disputed", logging.ERROR, height=height, source=how,
              certified=batch_hash(cert.header).hex(),
              signers=[s for s, _ in cert.signatures])  # fmt: skip

    def _broadcast(self, message: BatchVote | CertificateRequest) -> None:
        data = SHARES.encode(message)
        for peer in self.peers:
            self._post(peer, data)
