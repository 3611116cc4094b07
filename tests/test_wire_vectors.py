"""Node-level families, fixed vectors: another implementation must produce exactly these bytes.

The consensus family has its vectors in ``tests/test_codec.py``; these cover the
families of ``sequencer_net.node.wire`` (``/seqnet/tx/1``, ``/seqnet/shares/1``,
``/seqnet/sync/1``), framed ``[type_id, body]`` the same way. The inputs are the
documented test committee (``docs/wire-format.md``: chain ``test-chain``, keys
``SHA-256("seqnet/test-key/test-chain/" || i)``) and its block at height 1 with
payload ``"hello"``; everything else is a literal below. The batch header's
namespace root is a literal too (``delivery/nmt.py`` has its own vectors); its
signatures are real (ed25519 is deterministic), so these bytes also pin the
header's sign bytes (domain ``seqnet/batch-header/v1``). Share points are
arbitrary 33-byte strings and scalars 32-byte ones: the codec checks lengths,
not curve points (``mev.shares.verify_share_batch`` does).
"""

from __future__ import annotations

import pytest

from delivery.header import BatchCertificate, BatchHeader, batch_hash, genesis_batch_hash
from mev.shares import ShareBatch
from ordering.messages import block_hash
from sequencer_net.base.codec import Family
from sequencer_net.base.signing import sign_bytes
from sequencer_net.node.wire import (
    SHARES,
    SYNC,
    TX,
    BatchVote,
    CertificateReply,
    CertificateRequest,
    DecryptedBatch,
    DecryptedTx,
    ShareRequest,
    SyncedBlock,
    SyncRequest,
    SyncResponse,
    TxBatch,
)
from tests.factory import Net
from tests.test_codec import BLOCK_HASH_HEX

NET = Net(4)
BLOCK = NET.block(1, NET.genesis_qc, b"hello")
BLOCK_HASH = block_hash(BLOCK)
HEADER = BatchHeader(NET.chain_id, 1, BLOCK_HASH, b"\x66" * 32, 2, genesis_batch_hash(NET.chain_id))
HEADER_SIGN_BYTES = sign_bytes(HEADER, NET.chain_id)
CERT = BatchCertificate(
    HEADER, tuple((s, NET.keys[s].sign_raw(HEADER_SIGN_BYTES)) for s in range(3))
)
GENESIS_BATCH_HASH_HEX = "f38553eaab6619730559db8e4d54832a9af421331a6b8eec8dfe8e2e3686ec06"
BATCH_HASH_HEX = "ec17f95bad4e8bc7974b5dd7502f56cb301040bfcddcea271e07ef48f825a613"

TX_BATCH_HEX = "8201a101824474782d314474782d32"
SHARE_BATCH_HEX = (
    "8201a50102025820a7fbdb6f635d265d8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad73a7"
    "03825821000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20582121"
    "22232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40410458201111111111"
    "11111111111111111111111111111111111111111111111111111105582022222222222222222222"
    "22222222222222222222222222222222222222222222"
)
SHARE_REQUEST_HEX = (
    "8202a20101025820a7fbdb6f635d265d8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad73a7"
)
SYNC_REQUEST_HEX = "8201a20101021880"
BATCH_VOTE_HEX = (
    "8203a101a301a6016a746573742d636861696e0201035820a7fbdb6f635d265d8b19d0bf0668312c"
    "6beb7b8a1ac7b8060449b76ccfad73a7045820666666666666666666666666666666666666666666"
    "66666666666666666666660502065820f38553eaab6619730559db8e4d54832a9af421331a6b8eec"
    "8dfe8e2e3686ec0602010358402950e6ff33dcc09ea2e82b6868b7e84544aa9f0865db45f193782c"
    "2795184bbba000d699269a8ae4e7f9b206ab4e0793956e7a139045e2706fd2d073f493910d"
)
CERTIFICATE_REQUEST_HEX = "8204a10101"
CERTIFICATE_REPLY_HEX = (
    "8205a101a201a6016a746573742d636861696e0201035820a7fbdb6f635d265d8b19d0bf0668312c"
    "6beb7b8a1ac7b8060449b76ccfad73a7045820666666666666666666666666666666666666666666"
    "66666666666666666666660502065820f38553eaab6619730559db8e4d54832a9af421331a6b8eec"
    "8dfe8e2e3686ec060283820058409a5a5743ade251b025026fa5c07f0360afac4e4ded3e79655297"
    "fcaaca7b32b384133625e347d65e45dbfa0e491ec18f1be0b5d789ea14b383abcbb81492200d8201"
    "58402950e6ff33dcc09ea2e82b6868b7e84544aa9f0865db45f193782c2795184bbba000d699269a"
    "8ae4e7f9b206ab4e0793956e7a139045e2706fd2d073f493910d82025840a1015ac54b947e206cb9"
    "45659ef7efa16c033c9f558cbbe93af7b4eb4147e5ace3d55498660e207e708ec7ae69a6f60da2e1"
    "398ae1180f43a498b720d8805303"
)
SYNC_RESPONSE_HEX = (
    "8202a10181a401a501010201030104a201a30158204bd293ec1d907b033175f406ff75b293d9b18e"
    "73a4424498da8431634934b1ac020003000280054568656c6c6f02a201a3015820a7fbdb6f635d26"
    "5d8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad73a702010301028382005840afc816032e"
    "04d73047b2530b798f69f0f584f08a03bc1f8625185c09e8d1e641c4fb9cfe905fd40de78c094f7c"
    "79dc2d283068b64b76782fd91d0f2873e2650582015840ca7817f8b4df067595389742d77bc9fe0a"
    "807eefe1c000f3de06e15f9791d74581ad28c032857cb74496e4e324fa4a009147125e24466f1ce3"
    "1d27a113a3b00482025840954748bed6c3b864053a5acfb66a6bbf68e27f8a352b26364c32e29d35"
    "afff617fb8b7d6789b25a253ce18deb455884b40c6ab5e2d7786b6d53311d916e8890303a4010102"
    "5820a7fbdb6f635d265d8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad73a70382a3016872"
    "6f6c6c75702d61025820333333333333333333333333333333333333333333333333333333333333"
    "333303426869a30168726f6c6c75702d620258204444444444444444444444444444444444444444"
    "44444444444444444444444403f60482582055555555555555555555555555555555555555555555"
    "555555555555555555554004a201a6016a746573742d636861696e0201035820a7fbdb6f635d265d"
    "8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad73a704582066666666666666666666666666"
    "666666666666666666666666666666666666660502065820f38553eaab6619730559db8e4d54832a"
    "9af421331a6b8eec8dfe8e2e3686ec060283820058409a5a5743ade251b025026fa5c07f0360afac"
    "4e4ded3e79655297fcaaca7b32b384133625e347d65e45dbfa0e491ec18f1be0b5d789ea14b383ab"
    "cbb81492200d820158402950e6ff33dcc09ea2e82b6868b7e84544aa9f0865db45f193782c279518"
    "4bbba000d699269a8ae4e7f9b206ab4e0793956e7a139045e2706fd2d073f493910d82025840a101"
    "5ac54b947e206cb945659ef7efa16c033c9f558cbbe93af7b4eb4147e5ace3d55498660e207e708e"
    "c7ae69a6f60da2e1398ae1180f43a498b720d8805303"
)

VECTORS = [
    # [1, {1: ["tx-1", "tx-2"]}]
    pytest.param(TX, TxBatch((b"tx-1", b"tx-2")), TX_BATCH_HEX, id="tx-TxBatch"),
    # [1, {1: node 2, 2: batch id, 3: [share, share], 4: challenge, 5: response}]
    pytest.param(
        SHARES,
        ShareBatch(
            2, BLOCK_HASH, (bytes(range(33)), bytes(range(33, 66))), b"\x11" * 32, b"\x22" * 32
        ),
        SHARE_BATCH_HEX,
        id="shares-ShareBatch",
    ),
    # [2, {1: height 1, 2: block hash}]
    pytest.param(SHARES, ShareRequest(1, BLOCK_HASH), SHARE_REQUEST_HEX, id="shares-ShareRequest"),
    # [3, {1: {1: header, 2: signer 1, 3: signature}}]: a header {1: chain, 2: height 1,
    # 3: block hash, 4: namespace root, 5: 2 leaves, 6: genesis batch hash}, signed by 1
    pytest.param(
        SHARES,
        BatchVote(NET.keys[1].sign(HEADER, NET.chain_id, 1)),
        BATCH_VOTE_HEX,
        id="shares-BatchVote",
    ),
    # [4, {1: height 1}]
    pytest.param(
        SHARES, CertificateRequest(1), CERTIFICATE_REQUEST_HEX, id="shares-CertificateRequest"
    ),
    # [5, {1: {1: header, 2: [[0, sig], [1, sig], [2, sig]]}}]
    pytest.param(
        SHARES, CertificateReply(CERT), CERTIFICATE_REPLY_HEX, id="shares-CertificateReply"
    ),
    # [1, {1: from height 1, 2: limit 128}]: 128 takes the one-byte-argument form 18 80
    pytest.param(SYNC, SyncRequest(1, 128), SYNC_REQUEST_HEX, id="sync-SyncRequest"),
    # [2, {1: [{1: block, 2: QC by 0, 1, 2, 3: {1: 1, 2: hash, 3: txs, 4: keys},
    #          4: batch certificate}]}];
    # the second transaction did not open: plaintext null (f6), key empty (40)
    pytest.param(
        SYNC,
        SyncResponse(
            (
                SyncedBlock(
                    BLOCK,
                    NET.qc(BLOCK),
                    DecryptedBatch(
                        1,
                        BLOCK_HASH,
                        (
                            DecryptedTx("rollup-a", b"\x33" * 32, b"hi"),
                            DecryptedTx("rollup-b", b"\x44" * 32, None),
                        ),
                        (b"\x55" * 32, b""),
                    ),
                    CERT,
                ),
            )
        ),
        SYNC_RESPONSE_HEX,
        id="sync-SyncResponse",
    ),
]


@pytest.mark.parametrize(("family", "message", "expected"), VECTORS)
def test_fixed_vectors(family: Family, message: object, expected: str) -> None:
    assert BLOCK_HASH.hex() == BLOCK_HASH_HEX  # the inputs are the consensus vectors' inputs
    assert family.encode(message).hex() == expected
    decoded = family.decode(bytes.fromhex(expected))
    assert decoded == message and type(decoded) is type(message)


def test_batch_header_hashes() -> None:
    """The batch identities a rollup chains by (``docs/wire-format.md``)."""
    assert genesis_batch_hash(NET.chain_id).hex() == GENESIS_BATCH_HASH_HEX
    assert batch_hash(HEADER).hex() == BATCH_HASH_HEX
