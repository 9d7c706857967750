"""The bulk decoding fast paths give exactly what the general NLRI parser gives."""
from __future__ import annotations

import random

from l3fab.speaker.wire.nlri import (
    Prefix, RouteDistinguisher, VpnPrefix, decode_prefixes, decode_vpn_prefixes, encode_nlri,
)


def _general(decode, afi, data: bytes, odd: bytes) -> list:
    """Decode through the general loop: an odd record at the end defeats the fast path."""
    return decode(afi, data + odd)[:-1]


def test_host_route_runs_match_the_general_parser():
    rnd = random.Random(7)
    for afi, width, odd in ((1, 4, encode_nlri(Prefix.parse("10.0.0.0/8"))),
                            (2, 16, encode_nlri(Prefix.parse("2001:db8::/32")))):
        prefixes = [Prefix(afi, width * 8, rnd.randbytes(width)) for _ in range(500)]
        data = b"".join(encode_nlri(p) for p in prefixes)
        fast = decode_prefixes(afi, data)
        assert fast == prefixes == _general(decode_prefixes, afi, data, odd)


def test_vpn_runs_match_the_general_parser():
    rnd = random.Random(8)
    rd = RouteDistinguisher.parse("65000:7")
    for afi, length in ((1, 32), (1, 24), (2, 128), (2, 64)):
        nb = length // 8
        width = 4 if afi == 1 else 16
        vps = [VpnPrefix(rd, Prefix(afi, length, rnd.randbytes(nb) + bytes(width - nb)), (100,))
               for _ in range(300)]
        data = b"".join(encode_nlri(v) for v in vps)
        odd = encode_nlri(VpnPrefix(RouteDistinguisher.parse("65000:8"), vps[0].prefix, (101,)))
        fast = decode_vpn_prefixes(afi, data)
        assert fast == vps == _general(decode_vpn_prefixes, afi, data, odd)
        # a record differing only in its label must not be folded into the run
        mixed = data + encode_nlri(VpnPrefix(rd, vps[1].prefix, (555,)))
        assert decode_vpn_prefixes(afi, mixed)[-1].labels == (555,)
