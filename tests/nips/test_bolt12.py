"""Tests for nips/bolt12.py: BOLT 12 strings, offers, Merkle roots and invoice_requests.

Spec: shared/specs/other/bolt12-offer-encoding.md. The vectors below are the spec's
own (shared/specs/other/bolt12-vectors/), copied in so the tests need no checkout of
shared/: every one of offers-test.json, format-string-test.json and
signature-test.json is here.
"""

from __future__ import annotations

import contextlib
import string
from dataclasses import replace

import pytest
from coincurve import PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from nips.bolt12 import (
    BlindedHop,
    BlindedPath,
    Bolt12Error,
    InvoiceRequest,
    Offer,
    Reason,
    bigsize,
    decode_invoice_request,
    decode_offer,
    decode_string,
    encode_invoice_request,
    encode_offer,
    encode_string,
    encode_tlv_stream,
    make_offer,
    merkle_root,
    offer_id,
    parse_tlv_stream,
    sign_invoice_request,
    tagged_hash,
)

# offers-test.json: (description, bolt12, fields as (type, hex)) for the valid ones
VALID_OFFERS: list[tuple[str, str, list[tuple[int, str]]]] = [
    (
        "Minimal bolt12 offer",
        "lno1zcss9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqwmn4p72pksese",
        [
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with description (but no amount)",
        ("lno1pgx9getnwss8vetrw3hhyuckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg"),
        [
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "for testnet",
        (
            "lno1qgsyxjtl6luzd9t3pr62xr7eemp6awnejusgf6gw45q75vcfqqqqqqq2p32x2um5ypmx2cm5dae8"
            "x93pqthvwfzadd7jejes8q9lhc4rvjxd022zv5l44g6qah82ru5rdpnpj"
        ),
        [
            (2, "43497fd7f826957108f4a30fd9cec3aeba79972084e90ead01ea330900000000"),
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "for bitcoin (redundant)",
        (
            "lno1qgsxlc5vp2m0rvmjcxn2y34wv0m5lyc7sdj7zksgn35dvxgqqqqqqqq2p32x2um5ypmx2cm5dae8"
            "x93pqthvwfzadd7jejes8q9lhc4rvjxd022zv5l44g6qah82ru5rdpnpj"
        ),
        [
            (2, "6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000"),
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "for bitcoin or liquidv1",
        (
            "lno1qfqpge38tqmzyrdjj3x2qkdr5y80dlfw56ztq6yd9sme995g3gsxqqm0u2xq4dh3kdevrf4zg6hx"
            "8a60jv0gxe0ptgyfc6xkryqqqqqqqq9qc4r9wd6zqan9vd6x7unnzcss9mk8y3wkklfvevcrszlmu23k"
            "frxh49px20665dqwmn4p72pksese"
        ),
        [
            (
                2,
                (
                    "1466275836220db2944ca059a3a10ef6fd2ea684b0688d2c379296888a2060036fe28c0ab6f1b372"
                    "c1a6a246ae63f74f931e8365e15a089c68d6190000000000"
                ),
            ),
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with metadata",
        (
            "lno1qsgqqqqqqqqqqqqqqqqqqqqqqqqqqzsv23jhxapqwejkxar0wfe3vggzamrjghtt05kvkvpcp0a7"
            "9gmy3nt6jsn98ad2xs8de6sl9qmgvcvs"
        ),
        [
            (4, "00000000000000000000000000000000"),
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with amount",
        (
            "lno1pqpzwyq2p32x2um5ypmx2cm5dae8x93pqthvwfzadd7jejes8q9lhc4rvjxd022zv5l44g6qah82"
            "ru5rdpnpj"
        ),
        [
            (8, "2710"),
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with currency",
        (
            "lno1qcp4256ypqpzwyq2p32x2um5ypmx2cm5dae8x93pqthvwfzadd7jejes8q9lhc4rvjxd022zv5l4"
            "4g6qah82ru5rdpnpj"
        ),
        [
            (6, "555344"),
            (8, "2710"),
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with expiry",
        (
            "lno1pgx9getnwss8vetrw3hhyucwq3ay997czcss9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqw"
            "mn4p72pksese"
        ),
        [
            (10, "5465737420766563746f7273"),
            (14, "7a4297d8"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with issuer",
        (
            "lno1pgx9getnwss8vetrw3hhyucjy358garswvaz7tmzdak8gvfj9ehhyeeqgf85c4p3xgsxjmnyw4eh"
            "gunfv4e3vggzamrjghtt05kvkvpcp0a79gmy3nt6jsn98ad2xs8de6sl9qmgvcvs"
        ),
        [
            (10, "5465737420766563746f7273"),
            (18, "68747470733a2f2f626f6c7431322e6f726720424f4c54313220696e6475737472696573"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with quantity",
        (
            "lno1pgx9getnwss8vetrw3hhyuc5qyz3vggzamrjghtt05kvkvpcp0a79gmy3nt6jsn98ad2xs8de6sl"
            "9qmgvcvs"
        ),
        [
            (10, "5465737420766563746f7273"),
            (20, "05"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with unlimited (or unknown) quantity",
        ("lno1pgx9getnwss8vetrw3hhyuc5qqtzzqhwcuj966ma9n9nqwqtl032xeyv6755yeflt235pmww58egx6rxry"),
        [
            (10, "5465737420766563746f7273"),
            (20, ""),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with single quantity (weird but valid)",
        (
            "lno1pgx9getnwss8vetrw3hhyuc5qyq3vggzamrjghtt05kvkvpcp0a79gmy3nt6jsn98ad2xs8de6sl"
            "9qmgvcvs"
        ),
        [
            (10, "5465737420766563746f7273"),
            (20, "01"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with feature",
        (
            "lno1pgx9getnwss8vetrw3hhyucvp5yqqqqqqqqqqqqqqqqqqqqkyypwa3eyt44h6txtxquqh7lz5djg"
            "e4afgfjn7k4rgrkuag0jsd5xvxg"
        ),
        [
            (10, "5465737420766563746f7273"),
            (12, "08000000000000000000000000"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with blinded path via Bob (0x424242...), path_key 020202...",
        (
            "lno1pgx9getnwss8vetrw3hhyucs5ypjgef743p5fzqq9nqxh0ah7y87rzv3ud0eleps9kl2d5348hq2"
            "k8qzqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgqpqqqqqqqqqqqqqqqqqqqqqqqqqqqzqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqqzq3zyg3zyg3zyg3vggzamrjghtt05kvkvpcp0a79gmy3nt6"
            "jsn98ad2xs8de6sl9qmgvcvs"
        ),
        [
            (10, "5465737420766563746f7273"),
            (
                16,
                (
                    "0324653eac434488002cc06bbfb7f10fe18991e35f9fe4302dbea6d2353dc0ab1c02020202020202"
                    "02020202020202020202020202020202020202020202020202020202020202020202020202020202"
                    "02020202020202020202020202020202020202020010000000000000000000000000000000000202"
                    "02020202020202020202020202020202020202020202020202020202020202000811111111111111"
                    "11"
                ),
            ),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "same, with blinded path first_node_id using sciddir",
        (
            "lno1pgx9getnwss8vetrw3hhyucs3yqqqqqqqqqqqqp2qgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqqyqqqqqq"
            "qqqqqqqqqqqqqqqqqqqqqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqqgzyg3"
            "zyg3zyg3z93pqthvwfzadd7jejes8q9lhc4rvjxd022zv5l44g6qah82ru5rdpnpj"
        ),
        [
            (10, "5465737420766563746f7273"),
            (
                16,
                (
                    "00000000000000002a02020202020202020202020202020202020202020202020202020202020202"
                    "02020202020202020202020202020202020202020202020202020202020202020202020200100000"
                    "00000000000000000000000000000202020202020202020202020202020202020202020202020202"
                    "0202020202020200081111111111111111"
                ),
            ),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "with no issuer_id and blinded path via Bob (0x424242...), path_key 020202...",
        (
            "lno1pgx9getnwss8vetrw3hhyucs5ypjgef743p5fzqq9nqxh0ah7y87rzv3ud0eleps9kl2d5348hq2"
            "k8qzqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgqpqqqqqqqqqqqqqqqqqqqqqqqqqqqzqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqqzq3zyg3zyg3zygs"
        ),
        [
            (10, "5465737420766563746f7273"),
            (
                16,
                (
                    "0324653eac434488002cc06bbfb7f10fe18991e35f9fe4302dbea6d2353dc0ab1c02020202020202"
                    "02020202020202020202020202020202020202020202020202020202020202020202020202020202"
                    "02020202020202020202020202020202020202020010000000000000000000000000000000000202"
                    "02020202020202020202020202020202020202020202020202020202020202000811111111111111"
                    "11"
                ),
            ),
        ],
    ),
    (
        "... and with second blinded path via 1x2x3 (direction 1), path_key 020202...",
        (
            "lno1pgx9getnwss8vetrw3hhyucsl5qj5qeyv5l2cs6y3qqzesrth7mlzrlp3xg7xhulusczm04x6g6n"
            "ms9trspqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqqsqqqqqqqqqqqqqqqqqqqqqqqqqqpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsqpqg3zyg3zyg3zygpqqqqzqqqqgqqxqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqqgqqqqqqqqqqqqqqqqqqqqqqqqqqqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgqqsg3zyg3zyg3zygtzzqhwcuj966ma9n9nqwqtl032xeyv6755yeflt235pmww58eg"
            "x6rxry"
        ),
        [
            (10, "5465737420766563746f7273"),
            (
                16,
                (
                    "0324653eac434488002cc06bbfb7f10fe18991e35f9fe4302dbea6d2353dc0ab1c02020202020202"
                    "02020202020202020202020202020202020202020202020202020202020202020202020202020202"
                    "02020202020202020202020202020202020202020010000000000000000000000000000000000202"
                    "02020202020202020202020202020202020202020202020202020202020202000811111111111111"
                    "11010000010000020003020202020202020202020202020202020202020202020202020202020202"
                    "02020202020202020202020202020202020202020202020202020202020202020202020202001000"
                    "00000000000000000000000000000002020202020202020202020202020202020202020202020202"
                    "020202020202020200082222222222222222"
                ),
            ),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
        ],
    ),
    (
        "unknown odd field",
        (
            "lno1pgx9getnwss8vetrw3hhyuckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5x"
            "vxfppf5x2mrvdamk7unvvs"
        ),
        [
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
            (33, "68656c6c6f776f726c64"),
        ],
    ),
    (
        "unknown odd experimental field",
        (
            "lno1pgx9getnwss8vetrw3hhyuckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5x"
            "vx078wdv5gg2dpjkcmr0wahhymry"
        ),
        [
            (10, "5465737420766563746f7273"),
            (22, "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619"),
            (1000000033, "68656c6c6f776f726c64"),
        ],
    ),
]

# offers-test.json, the invalid ones: (description, bolt12, the reason we give)
INVALID_OFFERS: list[tuple[str, str, Reason]] = [
    (
        "Malformed: fields out of order",
        "lno1zcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszpgz5znzfgdzs",
        Reason.MALFORMED_TLV,
    ),
    # the vector's bytes carry type 72 (0x48), also unknown and even
    (
        "Malformed: unknown even TLV type 78",
        (
            "lno1pgz5znzfgdz3vggzqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpysgr0u2xq"
            "4dh3kdevrf4zg6hx8a60jv0gxe0ptgyfc6xkryqqqqqqqq"
        ),
        Reason.UNKNOWN_EVEN_TYPE,
    ),
    ("Malformed: empty", "lno1", Reason.BAD_STRING),
    ("Malformed: truncated at type", "lno1pg", Reason.MALFORMED_TLV),
    ("Malformed: truncated in length", "lno1pt7s", Reason.MALFORMED_TLV),
    ("Malformed: truncated after length", "lno1pgpq", Reason.MALFORMED_TLV),
    ("Malformed: truncated in description", "lno1pgpyz", Reason.MALFORMED_TLV),
    (
        "Malformed: invalid offer_chains length",
        "lno1qgqszzs9g9xyjs69zcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsz",
        Reason.BAD_FIELD,
    ),
    (
        "Malformed: truncated currency UTF-8",
        "lno1qcqcqzs9g9xyjs69zcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsz",
        Reason.BAD_FIELD,
    ),
    (
        "Malformed: invalid currency UTF-8",
        ("lno1qcplllhapqpq86q2q4qkc6trv5tzzq6muh550qsfva9fdes0ruph7ctk2s8aqq06r4jxj3msc448wzwy9s"),
        Reason.BAD_FIELD,
    ),
    (
        "Malformed: truncated description UTF-8",
        "lno1pgqcq93pqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqy",
        Reason.BAD_FIELD,
    ),
    (
        "Malformed: invalid description UTF-8",
        "lno1pgpgqsgkyypqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs",
        Reason.BAD_FIELD,
    ),
    (
        "Malformed: truncated offer_paths",
        "lno1pgz5znzfgdz3qqgpzcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsz",
        Reason.BAD_FIELD,
    ),
    # offer_paths' length byte is 2, so the path's bytes read as TLVs
    (
        "Malformed: zero num_hops in blinded_path",
        (
            "lno1pgz5znzfgdz3qqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsqzcssyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqsz"
        ),
        Reason.MALFORMED_TLV,
    ),
    # offer_paths' length byte is 2, so the path's bytes read as TLVs
    (
        "Malformed: truncated onionmsg_hop in blinded_path",
        (
            "lno1pgz5znzfgdz3qqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqspqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqgkyypqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs"
        ),
        Reason.MALFORMED_TLV,
    ),
    # offer_paths' length byte is 3, so the path's bytes read as TLVs
    (
        "Malformed: bad first_node_id in blinded_path",
        (
            "lno1pgz5znzfgdz3qqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqspqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqgqzcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsz"
        ),
        Reason.MALFORMED_TLV,
    ),
    # offer_paths' length byte is 2, so the path's bytes read as TLVs
    (
        "Malformed: bad path_key in blinded_path",
        (
            "lno1pgz5znzfgdz3qqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpsxqcrqvps"
            "xqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcpqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqgqzcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsz"
        ),
        Reason.MALFORMED_TLV,
    ),
    # offer_paths' length byte is 2, so the path's bytes read as TLVs
    (
        "Malformed: bad blinded_node_id in onionmsg_hop",
        (
            "lno1pgz5znzfgdz3qqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqspqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvps"
            "xqcrqvpsxqcrqvpsxqgqzcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsz"
        ),
        Reason.MALFORMED_TLV,
    ),
    (
        "Malformed: truncated issuer UTF-8",
        "lno1pgz5znzfgdz3yqvqzcssyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsz",
        Reason.BAD_FIELD,
    ),
    (
        "Malformed: invalid issuer UTF-8",
        "lno1pgz5znzfgdz3yq5qgytzzqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqg",
        Reason.BAD_FIELD,
    ),
    (
        "Malformed: invalid offer_issuer_id",
        "lno1pgz5znzfgdz3vggzqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvps",
        Reason.BAD_FIELD,
    ),
    (
        "Contains type >= 80",
        (
            "lno1pgz5znzfgdz3vggzqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgp9qgr0u2xq"
            "4dh3kdevrf4zg6hx8a60jv0gxe0ptgyfc6xkryqqqqqqqq"
        ),
        Reason.TYPE_OUT_OF_RANGE,
    ),
    # the type is written 0xfd + 4 bytes, so it reads as type 30517, truncated
    (
        "Contains type > 1999999999",
        (
            "lno1pgz5znzfgdz3vggzqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgp06ae4jsq9"
            "qgr0u2xq4dh3kdevrf4zg6hx8a60jv0gxe0ptgyfc6xkryqqqqqqqq"
        ),
        Reason.MALFORMED_TLV,
    ),
    # the type is written 0xfd + 4 bytes, so it reads as type 15258, truncated
    (
        "Contains unknown even type (1000000002)",
        (
            "lno1pgz5znzfgdz3vggzqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgp06wu6egp9"
            "qgr0u2xq4dh3kdevrf4zg6hx8a60jv0gxe0ptgyfc6xkryqqqqqqqq"
        ),
        Reason.MALFORMED_TLV,
    ),
    (
        "Contains unknown feature 122",
        (
            "lno1pgx9getnwss8vetrw3hhyucvzqzqqqqqqqqqqqqqqqqqqqqqqqqpvggzamrjghtt05kvkvpcp0a7"
            "9gmy3nt6jsn98ad2xs8de6sl9qmgvcvs"
        ),
        Reason.UNKNOWN_EVEN_FEATURE,
    ),
    (
        "Missing offer_description, but has offer_amount",
        "lno1pqpzwyqkyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg",
        Reason.INVALID,
    ),
    (
        "Missing offer_amount with offer_currency",
        (
            "lno1qcp4256ypgx9getnwss8vetrw3hhyuckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrku"
            "ag0jsd5xvxg"
        ),
        Reason.INVALID,
    ),
    (
        "Invalid: zero offer_amount",
        "lno1pqqq5qqkyyp4he0fg7pqje62jmnq78cr0ashv4q06qql58tyd9rhp3t2wuyugtq",
        Reason.INVALID,
    ),
    (
        "Invalid: zero offer_amount with currency",
        "lno1qcp4256ypqqq5qqkyyp4he0fg7pqje62jmnq78cr0ashv4q06qql58tyd9rhp3t2wuyugtq",
        Reason.INVALID,
    ),
    ("Missing offer_issuer_id and no offer_path", "lno1pgx9getnwss8vetrw3hhyuc", Reason.INVALID),
    (
        "Second offer_path is empty",
        (
            "lno1pgx9getnwss8vetrw3hhyucsespjgef743p5fzqq9nqxh0ah7y87rzv3ud0eleps9kl2d5348hq2"
            "k8qzqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgqpqqqqqqqqqqqqqqqqqqqqqqqqqqqzqgpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqqzq3zyg3zyg3zygszqqqqyqqqqsqqvpqyqszqgpqyqszqgpq"
            "yqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsq"
        ),
        Reason.BAD_FIELD,
    ),
    (
        "offer_chains with zero entries",
        "lno1qgqpvggrt0j7j3uzp9n549hxpu0sxlmpwe2ql5qplgwkg628wrzk5acfcskq",
        Reason.INVALID,
    ),
    (
        "Bech32 padding exceeds 4-bit limit",
        "lno1zcss9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqwmn4p72pkseseq",
        Reason.BAD_STRING,
    ),
]

# format-string-test.json: (comment, valid, string)
FORMAT_STRINGS: list[tuple[str, bool, str]] = [
    (
        "A complete string is valid",
        True,
        (
            "lno1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcnygrfdej82um5wf5k"
            "2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg"
        ),
    ),
    (
        "Uppercase is valid",
        True,
        (
            "LNO1PQPS7SJQPGTYZM3QV4UXZMTSD3JJQER9WD3HY6TSW35K7MSJZFPY7NZ5YQCNYGRFDEJ82UM5WF5K"
            "2UCKYYPWA3EYT44H6TXTXQUQH7LZ5DJGE4AFGFJN7K4RGRKUAG0JSD5XVXG"
        ),
    ),
    (
        "+ can join anywhere",
        True,
        (
            "l+no1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcnygrfdej82um5wf5"
            "k2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg"
        ),
    ),
    (
        "Multiple + can join",
        True,
        (
            "lno1pqps7sjqpgt+yzm3qv4uxzmtsd3jjqer9wd3hy6tsw3+5k7msjzfpy7nz5yqcn+ygrfdej82um5w"
            "f5k2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd+5xvxg"
        ),
    ),
    (
        "+ can be followed by whitespace",
        True,
        (
            "lno1pqps7sjqpgt+ yzm3qv4uxzmtsd3jjqer9wd3hy6tsw3+  5k7msjzfpy7nz5yqcn+\nygrfdej82"
            "um5wf5k2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd+\r\n 5xvxg"
        ),
    ),
    (
        "+ can be followed by whitespace, UPPERCASE",
        True,
        (
            "LNO1PQPS7SJQPGT+ YZM3QV4UXZMTSD3JJQER9WD3HY6TSW3+  5K7MSJZFPY7NZ5YQCN+\nYGRFDEJ82"
            "UM5WF5K2UCKYYPWA3EYT44H6TXTXQUQH7LZ5DJGE4AFGFJN7K4RGRKUAG0JSD+\r\n 5XVXG"
        ),
    ),
    (
        "Mixed case is invalid",
        False,
        (
            "LnO1PqPs7sJqPgTyZm3qV4UxZmTsD3JjQeR9Wd3hY6TsW35k7mSjZfPy7nZ5YqCnYgRfDeJ82uM5Wf5k"
            "2uCkYyPwA3EyT44h6tXtXqUqH7Lz5dJgE4AfGfJn7k4rGrKuAg0jSd5xVxG"
        ),
    ),
    (
        "+ must be surrounded by bech32 characters",
        False,
        (
            "lno1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcnygrfdej82um5wf5k"
            "2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg+"
        ),
    ),
    (
        "+ must be surrounded by bech32 characters",
        False,
        (
            "lno1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcnygrfdej82um5wf5k"
            "2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg+ "
        ),
    ),
    (
        "+ must be surrounded by bech32 characters",
        False,
        (
            "+lno1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcnygrfdej82um5wf5"
            "k2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg"
        ),
    ),
    (
        "+ must be surrounded by bech32 characters",
        False,
        (
            "+ lno1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcnygrfdej82um5wf"
            "5k2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg"
        ),
    ),
    (
        "+ must be surrounded by bech32 characters",
        False,
        (
            "ln++o1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcnygrfdej82um5wf"
            "5k2uckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg"
        ),
    ),
]

# signature-test.json, the three n1 streams: (comment, leaf TLVs as hex, merkle root)
MERKLE_VECTORS: list[tuple[str, list[str], str]] = [
    (
        "Simple n1 test, tlv1 = 1000",
        ["010203e8"],
        "b013756c8fee86503a0b4abdab4cddeb1af5d344ca6fc2fa8b6c08938caa6f93",
    ),
    (
        "n1 test, tlv1 = 1000, tlv2 = 1x2x3",
        ["010203e8", "02080000010000020003"],
        "c3774abbf4815aa54ccaa026bff6581f01f3be5fe814c620a252534f434bc0d1",
    ),
    (
        "n1 test, tlv1 = 1000, tlv2 = 1x2x3, tlv3 = 0266e4598d1d3c415f572a8488830b60f7e744ed9235eb0b1ba93283b315c03518, 1, 2",
        [
            "010203e8",
            "02080000010000020003",
            "03310266e4598d1d3c415f572a8488830b60f7e744ed9235eb0b1ba93283b315c0351800000000000000010000000000000002",
        ],
        "ab2e79b1283b0b31e0b035258de23782df6b89a38cfa7237bde69aed1a658c5d",
    ),
]

# signature-test.json, the invoice_request vector
INVREQ = (
    "lnr1qqyqqqqqqqqqqqqqqcp4256ypqqkgzshgysy6ct5dpjk6ct5d93kzmpq23ex2ct5d9ek293pqthvwfzadd7jejes8q9lhc"
    "4rvjxd022zv5l44g6qah82ru5rdpnpjkppqvjx204vgdzgsqpvcp4mldl3plscny0rt707gvpdh6ndydfacz43euzqhrurageg"
    "3n7kafgsek6gz3e9w52parv8gs2hlxzk95tzeswywffxlkeyhml0hh46kndmwf4m6xma3tkq2lu04qz3slje2rfthc89vss"
)
INVREQ_MERKLE = "608407c18ad9a94d9ea2bcdbe170b6c20c462a7833a197621c916f78cf18e624"
INVREQ_SIGHASH = "aefe3aa88a69772c246dcaef75ed3e7566c08ecc4e9f995233526a5651fc34cd"
INVREQ_SIGNATURE = (
    "b8f83ea3288cfd6ea510cdb481472575141e8d8744157f98562d162cc1c472526fdb24befefbdebab4dbb726bbd1b7d8"
    "aec057f8fa805187e5950d2bbe0e5642"
)

ALICE = PrivateKey(b"A" * 32)  # the vectors' issuer, privkey 0x4141...
BOB = PrivateKey(b"B" * 32)  # the vectors' payer, privkey 0x4242...
ALICE_ID = ALICE.public_key.format()
BOB_ID = BOB.public_key.format()
NOT_A_POINT = bytes([2]) + bytes([3] * 32)  # x = 0x0303... is not on secp256k1
SIG_TAG = b"lightninginvoice_requestsignature"


def expect(reason: Reason, call: object, *args: object) -> Bolt12Error:
    assert callable(call)
    with pytest.raises(Bolt12Error) as caught:
        call(*args)
    assert caught.value.reason is reason, caught.value
    return caught.value


def lno(records: list[tuple[int, bytes]]) -> str:
    """An offer string written field by field, wrong or not."""
    return encode_string("lno", b"".join(bigsize(t) + bigsize(len(v)) + v for t, v in records))


def lnr(records: list[tuple[int, bytes]], key: PrivateKey | None = BOB) -> str:
    """An invoice_request string written field by field, signed by ``key`` when given."""
    stream = encode_tlv_stream(records)
    if key is not None:
        sig = key.sign_schnorr(tagged_hash(SIG_TAG, merkle_root(stream)))
        stream = encode_tlv_stream([*records, (240, sig)])
    return encode_string("lnr", stream)


DESCRIPTION = (10, b"Test vectors")
ISSUER = (22, ALICE_ID)


# --- the vectors ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fields"), [pytest.param(s, f, id=d) for d, s, f in VALID_OFFERS])
def test_valid_offer_vectors(text: str, fields: list[tuple[int, str]]) -> None:
    offer = decode_offer(text)
    assert [(t, v.hex()) for t, v in parse_tlv_stream(decode_string(text)[1])] == fields
    assert encode_offer(offer) == text


@pytest.mark.parametrize(
    ("text", "reason"), [pytest.param(s, r, id=d) for d, s, r in INVALID_OFFERS]
)
def test_invalid_offer_vectors(text: str, reason: Reason) -> None:
    expect(reason, decode_offer, text)


@pytest.mark.parametrize(
    ("valid", "text"), [pytest.param(v, s, id=c) for c, v, s in FORMAT_STRINGS]
)
def test_format_string_vectors(valid: bool, text: str) -> None:
    if valid:
        canonical = "".join(text.split("+")).replace(" ", "").replace("\r", "").replace("\n", "")
        assert encode_offer(decode_offer(text)) == canonical.lower()
    else:
        expect(Reason.BAD_STRING, decode_offer, text)


@pytest.mark.parametrize(
    ("leaves", "root"), [pytest.param(hexes, r, id=c) for c, hexes, r in MERKLE_VECTORS]
)
def test_merkle_vectors(leaves: list[str], root: str) -> None:
    assert merkle_root(bytes.fromhex("".join(leaves))).hex() == root


def test_invoice_request_vector() -> None:
    request = decode_invoice_request(INVREQ)  # the signature verifies, or this raises
    assert merkle_root(decode_string(INVREQ)[1]).hex() == INVREQ_MERKLE
    assert tagged_hash(SIG_TAG, bytes.fromhex(INVREQ_MERKLE)).hex() == INVREQ_SIGHASH
    assert request.signature == bytes.fromhex(INVREQ_SIGNATURE)
    assert request.metadata == bytes(8)
    assert request.payer_id == BOB_ID
    assert request.offer == Offer(
        currency="USD", amount=100, description="A Mathematical Treatise", issuer_id=ALICE_ID
    )
    assert request.amount is None and request.payer_note is None
    assert request.is_for_offer
    assert encode_invoice_request(request) == INVREQ


def test_vector_keys_are_alice_and_bob() -> None:
    assert decode_offer(VALID_OFFERS[0][1]).issuer_id == ALICE_ID


# --- the string ----------------------------------------------------------------------


def test_plus_may_split_anywhere_between_characters() -> None:
    text = encode_offer(make_offer(ALICE_ID, "coffee"))
    bech32 = set("qpzry9x8gf2tvdw0s3jn54khce6mua7l")
    for cut in range(1, len(text)):
        split = f"{text[:cut]}+\r\n\t {text[cut:]}"
        if {text[cut - 1], text[cut]} <= bech32:
            assert decode_offer(split) == decode_offer(text)
        else:  # next to the 'o' of lno or the '1' separator
            expect(Reason.BAD_STRING, decode_offer, split)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(
            "lno1zcss 9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqwmn4p72pksese",
            Reason.BAD_STRING,
            id="space without +",
        ),
        pytest.param(
            "lno1zcssb9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqwmn4p72pksese",
            Reason.BAD_STRING,
            id="b is not bech32",
        ),
        pytest.param(
            "lnozcss9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqwmn4p72pksese",
            Reason.BAD_STRING,
            id="no separator",
        ),
        pytest.param(
            "lno1pf",  # 0x0a then padding bits 01
            Reason.BAD_STRING,
            id="non-zero padding",
        ),
        pytest.param(
            "lnx1zcss9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqwmn4p72pksese",
            Reason.WRONG_PREFIX,
            id="unknown prefix",
        ),
        pytest.param(
            "lnr1zcss9mk8y3wkklfvevcrszlmu23kfrxh49px20665dqwmn4p72pksese",
            Reason.WRONG_PREFIX,
            id="an lnr is not an offer",
        ),
        pytest.param("", Reason.BAD_STRING, id="empty string"),
        pytest.param("+", Reason.BAD_STRING, id="a lone +"),
    ],
)
def test_bad_strings(text: str, reason: Reason) -> None:
    expect(reason, decode_offer, text)


def test_string_layer_knows_invoices_too() -> None:
    assert decode_string("LNI1QQ") == ("lni", b"\x00")


def test_upper_case_encoding_reads_back() -> None:
    offer = make_offer(ALICE_ID, "coffee", amount_msat=21_000)
    assert decode_offer(encode_offer(offer).upper()) == offer


# --- TLV records and fields -----------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        pytest.param([DESCRIPTION, ISSUER, (78, b"")], Reason.UNKNOWN_EVEN_TYPE, id="even type 78"),
        pytest.param([DESCRIPTION, ISSUER, (80, b"")], Reason.TYPE_OUT_OF_RANGE, id="type 80"),
        pytest.param([(0, b""), DESCRIPTION, ISSUER], Reason.TYPE_OUT_OF_RANGE, id="type 0"),
        pytest.param(
            [DESCRIPTION, ISSUER, (2_000_000_000, b"")],
            Reason.TYPE_OUT_OF_RANGE,
            id="type 2000000000",
        ),
        pytest.param(
            [DESCRIPTION, ISSUER, (2_000_000_001, b"")],
            Reason.TYPE_OUT_OF_RANGE,
            id="odd type 2000000001",
        ),
        pytest.param(
            [DESCRIPTION, ISSUER, (1_000_000_002, b"")],
            Reason.UNKNOWN_EVEN_TYPE,
            id="even type 1000000002",
        ),
        pytest.param([DESCRIPTION, DESCRIPTION, ISSUER], Reason.MALFORMED_TLV, id="type twice"),
        pytest.param(
            [(8, b"\x00\x01"), DESCRIPTION, ISSUER], Reason.BAD_FIELD, id="tu64 with a leading zero"
        ),
        pytest.param(
            [(8, b"\x01" * 9), DESCRIPTION, ISSUER], Reason.BAD_FIELD, id="tu64 of 9 bytes"
        ),
        pytest.param([DESCRIPTION, (22, ALICE_ID[1:])], Reason.BAD_FIELD, id="32-byte issuer_id"),
        pytest.param(
            [DESCRIPTION, (22, b"\x04" + ALICE_ID[1:])], Reason.BAD_FIELD, id="issuer_id prefix 04"
        ),
        pytest.param([(2, bytes(33)), DESCRIPTION, ISSUER], Reason.BAD_FIELD, id="33-byte chains"),
        pytest.param(
            [DESCRIPTION, (16, b""), ISSUER], Reason.BAD_FIELD, id="offer_paths with no path"
        ),
    ],
)
def test_bad_records(records: list[tuple[int, bytes]], reason: Reason) -> None:
    expect(reason, decode_offer, lno(records))


def test_non_minimal_bigsize_is_malformed() -> None:
    stream = b"\xfd\x00\x0a" + bigsize(12) + b"Test vectors"
    expect(Reason.MALFORMED_TLV, decode_offer, encode_string("lno", stream))
    stream = b"\x0a\xfd\x00\x0c" + b"Test vectors"
    expect(Reason.MALFORMED_TLV, decode_offer, encode_string("lno", stream))


def test_large_types_use_long_bigsize() -> None:
    assert bigsize(1_000_000_033) == b"\xfe\x3b\x9a\xca\x21"
    assert bigsize(2**40) == b"\xff" + (2**40).to_bytes(8, "big")
    assert parse_tlv_stream(b"\xfe\x3b\x9a\xca\x21\x01x") == [(1_000_000_033, b"x")]


# --- blinded paths (offer_paths) -------------------------------------------------------


def path_bytes(first: bytes, key: bytes, hops: list[tuple[bytes, bytes]]) -> bytes:
    out = first + key + bytes([len(hops)])
    for node, data in hops:
        out += node + len(data).to_bytes(2, "big") + data
    return out


P = bytes([2] * 33)  # a valid point: the vectors use it for every blinded key


@pytest.mark.parametrize(
    "paths",
    [
        pytest.param(path_bytes(BOB_ID, P, []), id="zero num_hops"),
        pytest.param(path_bytes(BOB_ID, P, [(P, b"\x00" * 16)])[:-1], id="truncated onionmsg_hop"),
        pytest.param(path_bytes(NOT_A_POINT, P, [(P, b"")]), id="bad first_node_id"),
        pytest.param(path_bytes(BOB_ID, NOT_A_POINT, [(P, b"")]), id="bad path_key"),
        pytest.param(path_bytes(BOB_ID, P, [(NOT_A_POINT, b"")]), id="bad blinded_node_id"),
        pytest.param(path_bytes(b"\x02" + bytes(8), P, [(P, b"")]), id="sciddir direction 2"),
        pytest.param(
            path_bytes(BOB_ID, P, [(P, b"")]) + path_bytes(BOB_ID, P, []), id="second path empty"
        ),
    ],
)
def test_bad_blinded_paths(paths: bytes) -> None:
    expect(Reason.BAD_FIELD, decode_offer, lno([DESCRIPTION, (16, paths)]))


def test_blinded_path_structure() -> None:
    offer = decode_offer(VALID_OFFERS[17][1])  # two paths, the second via sciddir 1x2x3
    assert offer.paths is not None and len(offer.paths) == 2
    first, second = offer.paths
    assert first.first_node_id == BOB_ID and first.path_key == P
    assert first.hops == (BlindedHop(P, bytes(16)), BlindedHop(P, b"\x11" * 8))
    assert second.first_node_id == bytes.fromhex("010000010000020003")  # direction 1, 1x2x3
    assert second.final_node_id == P
    assert offer.issuer_id == ALICE_ID


def test_offer_with_paths_only() -> None:
    path = BlindedPath(b"\x00" + (42).to_bytes(8, "big"), P, (BlindedHop(P, b"cookie"),))
    offer = Offer(description="paths only", paths=(path,))
    assert decode_offer(encode_offer(offer)) == offer


# --- offers: the reader's rules and the writer --------------------------------------


def test_decoded_fields() -> None:
    by_description = {d: decode_offer(s) for d, s, _ in VALID_OFFERS}
    assert by_description["with currency"].currency == "USD"
    assert by_description["with currency"].amount == 10_000
    assert by_description["with currency"].amount_msat is None
    assert by_description["with amount"].amount_msat == 10_000
    assert by_description["with issuer"].issuer == "https://bolt12.org BOLT12 industries"
    assert by_description["with quantity"].quantity_max == 5
    assert by_description["with unlimited (or unknown) quantity"].quantity_max == 0
    assert by_description["with metadata"].metadata == bytes(16)
    assert by_description["with feature"].features == b"\x08" + bytes(12)
    assert by_description["unknown odd field"].unknown == ((33, b"helloworld"),)
    assert by_description["unknown odd experimental field"].unknown == (
        (1_000_000_033, b"helloworld"),
    )
    testnet = by_description["for testnet"].chains
    assert testnet is not None and testnet[0].hex().startswith("43497fd7")


def test_expiry() -> None:
    offer = decode_offer(dict((d, s) for d, s, _ in VALID_OFFERS)["with expiry"])
    assert offer.absolute_expiry == 0x7A4297D8
    assert not offer.expired(0x7A4297D8)
    assert offer.expired(0x7A4297D8 + 1)
    assert not make_offer(ALICE_ID, "").expired(2**40)


@pytest.mark.parametrize(
    ("offer", "reason"),
    [
        pytest.param(
            Offer(amount=5, issuer_id=ALICE_ID), Reason.INVALID, id="amount, no description"
        ),
        pytest.param(
            Offer(amount=0, description="", issuer_id=ALICE_ID), Reason.INVALID, id="zero amount"
        ),
        pytest.param(
            Offer(currency="USD", description="x", issuer_id=ALICE_ID),
            Reason.INVALID,
            id="currency, no amount",
        ),
        pytest.param(Offer(description="x"), Reason.INVALID, id="no issuer_id, no paths"),
        pytest.param(Offer(chains=(), issuer_id=ALICE_ID), Reason.INVALID, id="no chains"),
        pytest.param(
            Offer(features=b"\x01", issuer_id=ALICE_ID), Reason.UNKNOWN_EVEN_FEATURE, id="feature 0"
        ),
        pytest.param(Offer(issuer_id=NOT_A_POINT), Reason.BAD_FIELD, id="issuer_id off the curve"),
        pytest.param(
            Offer(amount=2**64, description="x", issuer_id=ALICE_ID),
            Reason.BAD_FIELD,
            id="amount over u64",
        ),
        pytest.param(
            Offer(issuer_id=ALICE_ID, unknown=((40, b""),)),
            Reason.UNKNOWN_EVEN_TYPE,
            id="unknown even",
        ),
        pytest.param(
            Offer(issuer_id=ALICE_ID, unknown=((81, b""),)),
            Reason.TYPE_OUT_OF_RANGE,
            id="unknown 81",
        ),
        pytest.param(
            Offer(issuer_id=ALICE_ID, unknown=((10, b"x"),)),
            Reason.INVALID,
            id="known type in unknown",
        ),
        pytest.param(
            Offer(description="\ud800", issuer_id=ALICE_ID), Reason.BAD_FIELD, id="lone surrogate"
        ),
    ],
)
def test_encode_refuses_what_readers_refuse(offer: Offer, reason: Reason) -> None:
    expect(reason, encode_offer, offer)


def test_odd_feature_bits_are_ignored() -> None:
    offer = Offer(features=b"\x02\x00", issuer_id=ALICE_ID)  # bit 9
    assert decode_offer(encode_offer(offer)) == offer


def test_offer_id_is_the_merkle_root_of_the_offer() -> None:
    for _, text, _ in VALID_OFFERS:
        assert offer_id(decode_offer(text)) == merkle_root(decode_string(text)[1]).hex()


def test_invoice_request_names_its_offer_by_offer_id() -> None:
    request = decode_invoice_request(INVREQ)
    offer = Offer(
        currency="USD", amount=100, description="A Mathematical Treatise", issuer_id=ALICE_ID
    )
    assert offer_id(request.offer) == offer_id(offer)
    assert offer_id(offer) != offer_id(replace(offer, amount=101))


# --- make_offer ------------------------------------------------------------------------


def test_make_offer() -> None:
    offer = make_offer(ALICE_ID, "Agent alice: summaries", issuer="alice@timmy", amount_msat=21_000)
    assert offer == Offer(
        amount=21_000,
        description="Agent alice: summaries",
        issuer="alice@timmy",
        issuer_id=ALICE_ID,
    )
    assert offer.paths is None
    text = encode_offer(offer)
    assert text.startswith("lno1")
    assert decode_offer(text) == offer
    assert (
        encode_offer(make_offer(ALICE_ID, "Agent alice: summaries", "alice@timmy", 21_000)) == text
    )


def test_make_offer_leaves_out_empty_texts() -> None:
    assert make_offer(ALICE_ID, "") == Offer(issuer_id=ALICE_ID)
    assert decode_offer(encode_offer(make_offer(ALICE_ID, ""))).description is None


@pytest.mark.parametrize(
    ("issuer_id", "description", "amount", "reason"),
    [
        pytest.param(ALICE_ID, "", 1000, Reason.INVALID, id="amount needs a description"),
        pytest.param(ALICE_ID, "x", 0, Reason.INVALID, id="zero amount"),
        pytest.param(ALICE_ID[1:], "x", None, Reason.BAD_FIELD, id="x-only key"),
        pytest.param(NOT_A_POINT, "x", None, Reason.BAD_FIELD, id="not a point"),
    ],
)
def test_make_offer_refuses(
    issuer_id: bytes, description: str, amount: int | None, reason: Reason
) -> None:
    expect(reason, make_offer, issuer_id, description, "", amount)


# --- round trips -----------------------------------------------------------------------

_keys = st.sampled_from([ALICE_ID, BOB_ID, P])
_text = st.text(max_size=20)
_u64 = st.integers(min_value=0, max_value=2**64 - 1)
_hops = st.builds(BlindedHop, _keys, st.binary(max_size=40))
_paths = st.builds(
    BlindedPath,
    st.one_of(_keys, st.binary(min_size=8, max_size=8).map(lambda scid: b"\x01" + scid)),
    _keys,
    st.lists(_hops, min_size=1, max_size=3).map(tuple),
)
_unknown = st.lists(
    st.one_of(st.integers(12, 39), st.integers(500_000_000, 999_999_999)).map(lambda n: 2 * n + 1),
    unique=True,
    max_size=3,
).map(lambda types: tuple((t, t.to_bytes(5, "big")) for t in sorted(types)))


@st.composite
def offers(draw: st.DrawFn) -> Offer:
    amount = draw(st.none() | st.integers(1, 2**64 - 1))
    paths = draw(st.none() | st.lists(_paths, min_size=1, max_size=2).map(tuple))
    return Offer(
        chains=draw(
            st.none()
            | st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=2).map(tuple)
        ),
        metadata=draw(st.none() | st.binary(max_size=16)),
        currency=draw(st.none() | st.just("EUR")) if amount is not None else None,
        amount=amount,
        description=draw(_text) if amount is not None else draw(st.none() | _text),
        features=draw(st.none() | st.sampled_from([b"", b"\x02", b"\x80\x00"])),
        absolute_expiry=draw(st.none() | _u64),
        paths=paths,
        issuer=draw(st.none() | _text),
        quantity_max=draw(st.none() | _u64),
        issuer_id=draw(_keys) if paths is None else draw(st.none() | _keys),
        unknown=draw(_unknown),
    )


@given(offers())
def test_offer_round_trip(offer: Offer) -> None:
    text = encode_offer(offer)
    assert decode_offer(text) == offer
    assert decode_offer(text.upper()) == offer
    assert offer_id(decode_offer(text)) == offer_id(offer)


@given(st.binary(min_size=1, max_size=200))
def test_string_round_trip(data: bytes) -> None:
    assert decode_string(encode_string("lni", data)) == ("lni", data)


@given(st.text(alphabet=string.printable, max_size=80))
def test_garbage_raises_only_bolt12_error(text: str) -> None:
    with contextlib.suppress(Bolt12Error):
        decode_offer(text)


# --- invoice requests -----------------------------------------------------------------

OFFER = make_offer(ALICE_ID, "Agent alice: summaries", amount_msat=21_000)
OFFER_RECORDS = [(8, (21_000).to_bytes(2, "big")), (10, b"Agent alice: summaries"), (22, ALICE_ID)]
METADATA = (0, b"\x07" * 16)
PAYER = (88, BOB_ID)


def test_paying_an_offer_with_a_note() -> None:
    unsigned = InvoiceRequest(
        metadata=b"\x07" * 16, payer_id=BOB_ID, offer=OFFER, amount=25_000, payer_note="great work"
    )
    text = encode_invoice_request(sign_invoice_request(unsigned, BOB.secret))
    request = decode_invoice_request(text)
    assert request.payer_note == "great work"
    assert request.amount == 25_000
    assert offer_id(request.offer) == offer_id(OFFER)
    records = parse_tlv_stream(decode_string(text)[1])
    assert records[:-1] == [
        METADATA,
        *OFFER_RECORDS,
        (82, (25_000).to_bytes(2, "big")),
        PAYER,
        (89, b"great work"),
    ]
    assert records[-1][0] == 240  # the signature, checked by decode_invoice_request


def test_signing_needs_the_payer_key() -> None:
    unsigned = InvoiceRequest(metadata=b"\x07", payer_id=BOB_ID, offer=OFFER)
    expect(Reason.BAD_SIGNATURE, sign_invoice_request, unsigned, ALICE.secret)
    expect(Reason.BAD_SIGNATURE, encode_invoice_request, unsigned)


def test_tampered_invoice_request_is_refused() -> None:
    records = parse_tlv_stream(decode_string(INVREQ)[1])
    cheaper = [(t, b"\x01" if t == 8 else v) for t, v in records]  # offer_amount 100 -> 1
    expect(
        Reason.BAD_SIGNATURE,
        decode_invoice_request,
        encode_string("lnr", encode_tlv_stream(cheaper)),
    )


def test_out_of_order_invoice_request_is_malformed() -> None:
    stream = b"".join(bigsize(t) + bigsize(len(v)) + v for t, v in [METADATA, PAYER, (10, b"x")])
    expect(Reason.MALFORMED_TLV, decode_invoice_request, encode_string("lnr", stream))


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        pytest.param([*OFFER_RECORDS, PAYER], Reason.INVALID, id="no invreq_metadata"),
        pytest.param([METADATA, *OFFER_RECORDS], Reason.INVALID, id="no invreq_payer_id"),
        pytest.param(
            [METADATA, *OFFER_RECORDS, PAYER, (160, b"")], Reason.TYPE_OUT_OF_RANGE, id="type 160"
        ),
        pytest.param(
            [METADATA, *OFFER_RECORDS, PAYER, (3_000_000_001, b"")],
            Reason.TYPE_OUT_OF_RANGE,
            id="type 3000000001",
        ),
        pytest.param(
            [METADATA, *OFFER_RECORDS, PAYER, (92, b"")],
            Reason.UNKNOWN_EVEN_TYPE,
            id="even type 92",
        ),
        pytest.param(
            [METADATA, *OFFER_RECORDS, (84, b"\x04"), PAYER],
            Reason.UNKNOWN_EVEN_FEATURE,
            id="invreq feature 2",
        ),
        pytest.param(
            [METADATA, *OFFER_RECORDS, (86, b"\x02"), PAYER],
            Reason.INVALID,
            id="quantity, offer has none",
        ),
        pytest.param(
            [METADATA, *OFFER_RECORDS, (82, b"\x01"), PAYER],
            Reason.INVALID,
            id="amount below the offer's",
        ),
        pytest.param(
            [METADATA, (10, b"tip"), ISSUER, PAYER], Reason.INVALID, id="no amount anywhere"
        ),
        pytest.param(
            [METADATA, (10, b"x"), (20, b"\x03"), ISSUER, (86, b"\x04"), PAYER],
            Reason.INVALID,
            id="quantity above max",
        ),
        pytest.param(
            [METADATA, (10, b"x"), (20, b""), ISSUER, (82, b"\x01"), PAYER],
            Reason.INVALID,
            id="offer needs a quantity",
        ),
        pytest.param(
            [METADATA, (10, b"x"), (20, b"\x03"), ISSUER, (82, b"\x01"), (86, b""), PAYER],
            Reason.INVALID,
            id="zero quantity",
        ),
        pytest.param(
            [METADATA, (10, b"refund"), (82, b"\x01"), PAYER, (91, b"\x01\x21\x01a")],
            Reason.BAD_FIELD,
            id="bip353 name with !",
        ),
        pytest.param(
            [METADATA, (10, b"refund"), (12, b""), (82, b"\x01"), PAYER],
            Reason.INVALID,
            id="offer_features, no offer",
        ),
        pytest.param([METADATA, (10, b"refund"), PAYER], Reason.INVALID, id="no offer, no amount"),
    ],
)
def test_invalid_invoice_requests(records: list[tuple[int, bytes]], reason: Reason) -> None:
    expect(reason, decode_invoice_request, lnr(records))


def test_unsigned_request_for_an_offer_is_refused() -> None:
    expect(
        Reason.BAD_SIGNATURE,
        decode_invoice_request,
        lnr([METADATA, *OFFER_RECORDS, PAYER], key=None),
    )


def test_request_without_an_offer() -> None:
    text = lnr(
        [METADATA, (10, b"refund"), (82, b"\x03\xe8"), PAYER, (91, b"\x05alice\x0bexample.com")],
        key=None,
    )
    request = decode_invoice_request(text)
    assert not request.is_for_offer
    assert request.amount == 1000
    assert request.bip_353_name == ("alice", "example.com")
    assert request.signature is None


def test_request_keeps_unknown_odd_fields() -> None:
    text = lnr([METADATA, *OFFER_RECORDS, (33, b"o"), PAYER, (101, b"r"), (2_000_000_001, b"x")])
    request = decode_invoice_request(text)
    assert request.offer.unknown == ((33, b"o"),)
    assert request.unknown == ((101, b"r"), (2_000_000_001, b"x"))
    assert encode_invoice_request(request) == text


@given(st.sampled_from([s for _, s, _ in VALID_OFFERS] + [INVREQ]), st.data())
def test_damaged_strings_raise_only_bolt12_error(text: str, data: st.DataObject) -> None:
    prefix, stream = decode_string(text)
    at = data.draw(st.integers(0, len(stream) - 1))
    damaged = bytearray(stream[: data.draw(st.integers(at + 1, len(stream)))])
    damaged[at] = data.draw(st.integers(0, 255))
    decode = decode_offer if prefix == "lno" else decode_invoice_request
    with contextlib.suppress(Bolt12Error):
        decode(encode_string(prefix, bytes(damaged)))


def test_an_offer_is_not_an_invoice_request() -> None:
    expect(Reason.WRONG_PREFIX, decode_invoice_request, VALID_OFFERS[0][1])
