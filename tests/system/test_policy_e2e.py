"""Import policy, the leaf's per-host filter and maximum-prefix on a running speaker."""
from __future__ import annotations

import struct

from l3fab.speaker.wire import (
    IPV6_UNICAST, VPNV4, AsPath, MpNextHop, MpReachNlri, Notification, Origin, Prefix, RouteDistinguisher,
    VpnPrefix, route_target,
)
from l3fab.speaker.wire.attributes import ExtendedCommunities
from l3fab.speaker.wire.update import Update

from .rawpeer import RawPeer, wait

LOCATOR = "2001:db8:0:11::/64"


def _reach(family, nh, *nlri, asn=65011):
    attrs = (Origin(0), AsPath.sequence(asn), ExtendedCommunities((route_target("65000:100"),)))
    return Update(attributes=(MpReachNlri(family, MpNextHop(nh), tuple(nlri)),) + attrs).encode()


def _vpn(prefix, rd="10.0.0.11:100", label=100):
    return VpnPrefix(RouteDistinguisher.parse(rd), Prefix.parse(prefix), (label,))


def test_leaf_filters_a_rogue_host_and_enforces_max_prefix(daemon_factory):
    d = daemon_factory({
        "router-id": "10.0.0.1", "asn": 65101, "role": "leaf", "fib": {"enabled": False},
        "listen": {"addresses": ["127.0.0.1"], "port": 0},
        "neighbors": [{"name": "host11", "address": "127.0.0.1", "remote-as": 65011, "passive": True,
                       "families": ["ipv6", "vpnv4"], "host-locator": LOCATOR, "keep-pre-policy": True,
                       "max-prefix": {"limit": 6, "restart": 0}}],
    })
    host = RawPeer(d.status["listen_port"], families=(IPV6_UNICAST, VPNV4), asn=65011, router_id="10.0.0.11")
    wait(lambda: d.api("neighbor", neighbor="host11")["state"] == "Established")

    host.send(_reach(IPV6_UNICAST, "2001:db8:0:11::1", Prefix.parse(LOCATOR)))               # its locator: ok
    host.send(_reach(IPV6_UNICAST, "2001:db8:0:11::1", Prefix.parse("2001:db8:0:22::/64")))  # another's locator
    host.send(_reach(IPV6_UNICAST, "2001:db8:0:11::1", Prefix.parse("2001:db8:0:11::/63")))  # wider than its own
    host.send(_reach(VPNV4, "2001:db8:0:11::5", _vpn("192.168.1.5/32")))                      # SID in its locator
    host.send(_reach(VPNV4, "2001:db8:0:22::7", _vpn("192.168.1.7/32")))                      # another host's SID
    wait(lambda: d.api("neighbor", neighbor="host11")["received_pre_policy"] == {"ipv6-unicast": 3, "vpnv4": 2})
    accepted = {(r["family"], r["prefix"]) for r in d.api("rib_received", neighbor="host11")}
    assert accepted == {("ipv6-unicast", LOCATOR), ("vpnv4", "192.168.1.5/32")}
    loc = {(r["family"], r["prefix"]) for r in d.api("rib")}
    assert loc == accepted  # nothing the filter refused reached the Loc-RIB

    # seven VPN routes inside the locator: one more than max-prefix allows
    host.send(_reach(VPNV4, "2001:db8:0:11::5", *[_vpn(f"192.168.2.{i}/32") for i in range(7)]))
    note = host.expect(Notification)
    assert (note.code, note.subcode) == (6, 1)
    assert note.data == struct.pack("!HBI", 1, 128, 6)  # RFC 4486: AFI, SAFI, the limit
    n = wait(lambda: (lambda x: x if x["state"] != "Established" else None)(d.api("neighbor", neighbor="host11")))
    assert n["last_notification_out"].startswith("6/1")
    assert d.api("rib") == []  # its routes are gone with the session
    assert d.proc.poll() is None
