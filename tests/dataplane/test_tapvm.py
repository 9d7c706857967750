"""``lab.tapvm``: the user-space VM behind a TAP, against the real kernel and frame by frame.

The namespace test is the one that matters: the host's own ARP, ND and ping
must accept what the VM sends (the kernel checks every checksum), and the
VM's pings must get through the host's gateway addresses. The frame tests pin
down what the kernel test cannot force: malformed and truncated frames.
"""
from __future__ import annotations

import ipaddress
import struct

from l3fab.lab.netns import CommandFailed, Lab, Namespace, wait_until
from l3fab.lab.tapvm import (ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMP_ECHO_REQUEST, ICMPV6_ECHO_REQUEST,
                       ND_ADVERT, ND_SOLICIT, PROTO_ICMP, TapVm, Vm, arp, ethernet,
                       icmp_message, icmpv6_checksum, icmpv6_packet, inet_checksum, ipv4_packet,
                       link_local, mac_bytes, multicast_mac, solicited_node)

TAP = "tap-t1"
VM_MAC = "02:00:00:00:00:02"
VM4, VM6 = "10.0.0.2", "fd00::2"
GW4, GW6 = "169.254.0.1", "fe80::1"
COUNT = 3

HOST_MAC = bytes.fromhex("0200000000aa")
MAC = mac_bytes(VM_MAC)
A4, A6 = ipaddress.IPv4Address(VM4), ipaddress.IPv6Address(VM6)
G4, G6 = ipaddress.IPv4Address(GW4), ipaddress.IPv6Address(GW6)


# -- against the kernel --------------------------------------------------------

def configure_host_side(host: Namespace) -> None:
    """What l3fab's dataplane does for an endpoint TAP, by hand."""
    host.ip("link", "set", "dev", TAP, "addrgenmode", "none")
    host.ip("link", "set", "dev", TAP, "up")
    host.ip("addr", "add", f"{GW4}/32", "scope", "link", "dev", TAP)
    host.ip("-6", "addr", "add", f"{GW6}/64", "dev", TAP, "nodad")
    host.ip("route", "add", f"{VM4}/32", "dev", TAP)
    host.ip("-6", "route", "add", f"{VM6}/128", "dev", TAP)


def link_flags(host: Namespace) -> list[str] | None:
    """The TAP's flags, or None once the device is gone."""
    try:
        (info,) = host.ip_json("link", "show", "dev", TAP)
    except CommandFailed:
        return None
    return info["flags"]


def ping(lab: Lab, host: Namespace, *args: str) -> str:
    out = lab.run(host, ["ping", *args, "-c", str(COUNT), "-i", "0.2", "-W", "2"]).stdout
    assert f"{COUNT} packets transmitted, {COUNT} received" in out, out
    return out


def test_tap_vm_answers_the_host_and_pings_its_gateway(lab: Lab) -> None:
    host = lab.add_namespace("host")
    go = lab.workdir / "host-side-ready"
    vm = TapVm.start(lab, host, TAP, VM_MAC, VM4, VM6, ping=(GW4, GW6), count=COUNT, ping_when=go)
    configure_host_side(host)
    go.touch()  # the VM pings only now: on a loaded machine it could otherwise beat the host's set-up (regression)

    flags = link_flags(host)
    assert flags is not None and "LOWER_UP" in flags and "NO-CARRIER" not in flags, flags
    for family, dst in (("-4", VM4), ("-6", VM6)):
        (route,) = host.ip_json(family, "route", "show", dst)
        assert "linkdown" not in route.get("flags", []), route

    ping(lab, host, VM4)
    ping(lab, host, "-6", VM6)
    (src4,) = [r["prefsrc"] for r in host.ip_json("route", "get", VM4)]
    (src6,) = [r["prefsrc"] for r in host.ip_json("-6", "route", "get", VM6)]
    stats = wait_until(lambda: (s := vm.stats()).requests("icmpv6", src6) >= COUNT and s,
                       5, 0.1, what="the VM's stats to show the host's pings")
    assert stats.requests("icmp", src4) == COUNT, stats
    assert stats.requests("icmpv6", src6) == COUNT, stats
    assert stats.malformed == 0, stats

    # The VM's own pings: gateway resolved by ARP / ND, every echo answered.
    def own_pings_done():
        pings = vm.stats().pings
        return all(p.received == COUNT for p in pings.values()) and pings

    pings = wait_until(own_pings_done, 10, 0.1, what="replies to the VM's own pings")
    assert set(pings) == {GW4, GW6}
    host_mac = host.ip_json("link", "show", "dev", TAP)[0]["address"]
    assert {p.gateway_mac for p in pings.values()} == {host_mac}
    assert all(p.sent == COUNT for p in pings.values())
    final = vm.stats()
    assert final.replies("icmp", GW4) == COUNT and final.replies("icmpv6", GW6) == COUNT, final

    assert vm.stop() == 0, vm.process.log_text()
    flags = link_flags(host)
    assert flags is None or "NO-CARRIER" in flags, flags
    assert vm.stats().requests("icmp", src4) == COUNT  # the final write survived the exit


# -- frame by frame --------------------------------------------------------------

def new_vm() -> Vm:
    return Vm(MAC, A4, A6)


def arp_request(target: ipaddress.IPv4Address) -> bytes:
    return ethernet(b"\xff" * 6, HOST_MAC, ETH_P_ARP,
                    arp(1, HOST_MAC, G4.packed, bytes(6), target.packed))


def echo4() -> bytes:
    message = icmp_message(ICMP_ECHO_REQUEST, struct.pack("!HH", 7, 1) + b"x" * 16)
    return ethernet(MAC, HOST_MAC, ETH_P_IP, ipv4_packet(G4.packed, A4.packed, PROTO_ICMP, message))


def echo6() -> bytes:
    packet = icmpv6_packet(G6.packed, A6.packed, ICMPV6_ECHO_REQUEST,
                           struct.pack("!HH", 7, 1) + b"x" * 16, 64)
    return ethernet(MAC, HOST_MAC, ETH_P_IPV6, packet)


def solicit(source: ipaddress.IPv6Address, target: ipaddress.IPv6Address) -> bytes:
    group = solicited_node(target)
    body = bytes(4) + target.packed
    if not source.is_unspecified:
        body += struct.pack("!BB", 1, 1) + HOST_MAC
    packet = icmpv6_packet(source.packed, group.packed, ND_SOLICIT, body, 255)
    return ethernet(multicast_mac(group), HOST_MAC, ETH_P_IPV6, packet)


def test_link_local_is_the_modified_eui64_of_the_mac() -> None:
    assert link_local(mac_bytes("52:54:00:12:34:56")) == ipaddress.IPv6Address(
        "fe80::5054:ff:fe12:3456")
    assert link_local(MAC) == ipaddress.IPv6Address("fe80::ff:fe00:2")


def test_arp_reply_only_for_its_own_address() -> None:
    vm = new_vm()
    (reply,) = vm.receive(arp_request(A4))
    assert reply == ethernet(HOST_MAC, MAC, ETH_P_ARP, arp(2, MAC, A4.packed, HOST_MAC, G4.packed))
    assert vm.receive(arp_request(ipaddress.IPv4Address("10.0.0.3"))) == []


def test_echo_replies_go_to_the_sender_with_ttl_64() -> None:
    vm = new_vm()
    (reply4,) = vm.receive(echo4())
    assert reply4[:12] == HOST_MAC + MAC
    ip4 = reply4[14:]
    assert ip4[8] == 64 and ip4[12:16] == A4.packed and ip4[16:20] == G4.packed
    assert inet_checksum(ip4[:20]) == 0 and inet_checksum(ip4[20:]) == 0 and ip4[20] == 0
    (reply6,) = vm.receive(echo6())
    ip6 = reply6[14:]
    assert reply6[:12] == HOST_MAC + MAC and ip6[7] == 64
    assert ip6[8:24] == A6.packed and ip6[24:40] == G6.packed and ip6[40] == 129
    assert icmpv6_checksum(ip6[8:24], ip6[24:40], ip6[40:]) == 0
    assert vm.stats.requests("icmp", GW4) == 1 and vm.stats.requests("icmpv6", GW6) == 1


def test_neighbour_advertisement_solicited_and_for_dad() -> None:
    vm = new_vm()
    for target in (A6, vm.link_local):
        (reply,) = vm.receive(solicit(G6, target))
        ip6 = reply[14:]
        assert reply[:6] == HOST_MAC and ip6[7] == 255 and ip6[40] == ND_ADVERT
        assert ip6[8:24] == target.packed and ip6[24:40] == G6.packed
        assert icmpv6_checksum(ip6[8:24], ip6[24:40], ip6[40:]) == 0
        assert ip6[44] == 0x60 and ip6[48:64] == target.packed  # Solicited | Override
        assert ip6[64:72] == b"\x02\x01" + MAC  # target link-layer address option
    (dad,) = vm.receive(solicit(ipaddress.IPv6Address("::"), A6))
    assert dad[:6] == b"\x33\x33\x00\x00\x00\x01" and dad[14 + 44] == 0x20  # to ff02::1, O only
    assert vm.receive(solicit(G6, ipaddress.IPv6Address("fd00::3"))) == []


def test_truncated_or_corrupt_frames_are_counted_never_answered() -> None:
    frames = [arp_request(A4), echo4(), echo6(), solicit(G6, A6)]
    vm = new_vm()
    bad = 0
    for frame in frames:
        assert vm.receive(frame), "the intact frame is answered"
        for cut in range(len(frame)):
            assert vm.receive(frame[:cut]) == [], (frame.hex(), cut)
            bad += 1
        corrupt = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if frame is not frames[0]:  # ARP has no checksum
            assert vm.receive(corrupt) == []
            bad += 1
    assert vm.stats.malformed == bad
