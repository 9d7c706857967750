"""Realistic paths for the policy tests: what a leaf receives from hosts."""
from __future__ import annotations

from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.wire.attributes import AsPath, Communities, ExtendedCommunities, MpNextHop, Origin
from l3fab.speaker.wire.constants import IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6
from l3fab.speaker.wire.extcommunity import route_target
from l3fab.speaker.wire.nlri import Prefix, VpnPrefix
from l3fab.speaker.wire.rd import RouteDistinguisher

HOST11 = Source("host11", "fe80::11", asn=65011)
HOST12 = Source("host12", "fe80::12", asn=65012)
LOCATOR11 = "2001:db8:0:11::/64"
LOCATOR12 = "2001:db8:0:12::/64"
SID11 = "2001:db8:0:11:0:0:0:100"  # an End.DT46 SID of host11
SID12 = "2001:db8:0:12::100"


def unicast(prefix: str, next_hop: str = "fe80::11", source: Source = HOST11,
            as_path: tuple[int, ...] = (65011,), extra: tuple = ()) -> Path:
    pfx = Prefix.parse(prefix)
    return Path(IPV4_UNICAST if pfx.afi == 1 else IPV6_UNICAST, pfx, MpNextHop(next_hop),
                (Origin(0), AsPath.sequence(*as_path)) + extra, source=source)


def vpn(prefix: str, next_hop: str = SID11, rd: str = "65000:100", rts: tuple[str, ...] = ("65000:100",),
        source: Source = HOST11, as_path: tuple[int, ...] = (65011,), communities: tuple[int, ...] = ()) -> Path:
    pfx = Prefix.parse(prefix)
    attrs: tuple = (Origin(0), AsPath.sequence(*as_path),
                    ExtendedCommunities(tuple(route_target(rt) for rt in rts)))
    if communities:
        attrs += (Communities(communities),)
    return Path(VPNV4 if pfx.afi == 1 else VPNV6, VpnPrefix(RouteDistinguisher.parse(rd), pfx),
                MpNextHop(next_hop), attrs, labels=(16,), source=source)
