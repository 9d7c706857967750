"""The benchmark's network: one FRR sender, an l3fab injector behind it, one link per receiver.

::

    inj (l3fab) ──┐                 ┌── rcv-l3fab   (l3fab)
    exasend       ├── send (FRR) ───┼── rcv-gobgpd  (gobgpd)
     (ExaBGP) ────┘                 ├── rcv-exabgp  (ExaBGP)
                                    └── rcv-frr     (FRR bgpd -n)

Every link is its own /64 (``2001:db8:<index>::/64``, sender ``::1``, peer
``::2``) and every session is numbered eBGP over IPv6 with RFC 8950 extended
next hop, so IPv4 routes carry an IPv6 next hop as in the fabric.

FRR (the sender) runs bgpd with ``-n`` (nothing goes to the kernel) and
``coalesce-time 0`` (its default delays the first UPDATE by about a second).
It sends nothing back to the injector or to ExaBGP (route-map ``DENY-ALL``),
keeps VPN next hops unchanged toward the receivers (``attribute-unchanged
next-hop``: VPN transit without VRFs, PEERS.md), and has every receiver's
neighbour configured but ``shutdown``: :meth:`SenderFrr.enable` opens one
session at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

from l3fab.lab.netns import Lab, Namespace
from l3fab.lab.peers.frr import FrrRouter

from .frr_vty import BgpdVty

SENDER_AS = 65000
SENDER_ROUTER_ID = "10.0.0.100"
SENDER_NS = "send"


@dataclass(frozen=True)
class Link:
    """A veth between the sender and one peer; ``index`` picks the /64."""

    name: str
    index: int
    asn: int

    @property
    def sender_ifname(self) -> str:
        return f"to-{self.name}"[:15]

    @property
    def ifname(self) -> str:
        return "to-send"

    @property
    def sender_address(self) -> str:
        return f"2001:db8:{self.index:x}::1"

    @property
    def address(self) -> str:
        return f"2001:db8:{self.index:x}::2"

    @property
    def router_id(self) -> str:
        return f"10.0.{self.index >> 8}.{self.index & 0xFF}"


INJECTOR = Link("inj", 0x100, 65100)
EXABGP_SENDER = Link("exasend", 0x200, 65200)


def connect(lab: Lab, sender: Namespace, link: Link, ns_name: str, *,
            shared_subnet: bool = True) -> Namespace:
    """Create the peer's namespace and its veth to the sender, addresses on both ends.

    With ``shared_subnet=False`` each end has a /128 and a device route to the
    other's, so neither sees the other on a connected subnet. FRR then treats
    the session as not on a shared network and sends next hops without its
    link-local address: VPN next hops in the 24-octet form (RD + global), not
    the 48-octet one (RD + global + RD + link-local) that ExaBGP 5.0.15 rejects
    with NOTIFICATION 3/9 (PEERS.md). Every receiver is connected this way, so
    all are fed the same bytes. FRR needs ``disable-connected-check`` for it.
    """
    ns = lab.add_namespace(ns_name, forwarding=False)
    lab.link(sender, ns, link.sender_ifname, link.ifname)
    length = 64 if shared_subnet else 128
    lab.add_address(sender, link.sender_ifname, f"{link.sender_address}/{length}")
    lab.add_address(ns, link.ifname, f"{link.address}/{length}")
    if not shared_subnet:
        sender.ip("-6", "route", "add", f"{link.address}/128", "dev", link.sender_ifname)
        ns.ip("-6", "route", "add", f"{link.sender_address}/128", "dev", link.ifname)
    return ns


def sender_config(receivers: list[Link]) -> str:
    """FRR's integrated config: injector and ExaBGP sender up, every receiver shut down."""
    sources = [INJECTOR, EXABGP_SENDER]
    lines = ["route-map DENY-ALL deny 10", "!",
             f"router bgp {SENDER_AS}",
             f" bgp router-id {SENDER_ROUTER_ID}",
             " no bgp ebgp-requires-policy",
             " no bgp network import-check",
             " no bgp default ipv4-unicast",
             " coalesce-time 0"]
    for link in sources + receivers:
        peer = link.address
        lines += [f" neighbor {peer} remote-as {link.asn}",
                  f" neighbor {peer} timers connect 1",
                  f" neighbor {peer} capability extended-nexthop"]
        if link in receivers:
            lines.append(f" neighbor {peer} disable-connected-check")
        if link in receivers or link is EXABGP_SENDER:
            lines.append(f" neighbor {peer} shutdown")
    for afi in ("ipv4 unicast", "ipv4 vpn"):
        lines.append(f" address-family {afi}")
        for link in sources + receivers:
            lines.append(f"  neighbor {link.address} activate")
        for link in sources:
            lines.append(f"  neighbor {link.address} route-map DENY-ALL out")
        if afi == "ipv4 vpn":
            lines += [f"  neighbor {link.address} attribute-unchanged next-hop" for link in receivers]
        lines.append(" exit-address-family")
    return "\n".join(lines + ["!"])


def frr_summary_command(family: str) -> str:
    return {"ipv4": "show bgp ipv4 unicast summary json",
            "vpnv4": "show bgp ipv4 vpn summary json"}[family]


class SenderFrr:
    """The FRR instance every receiver is fed from."""

    def __init__(self, lab: Lab, receivers: list[Link]):
        self.lab = lab
        self.ns = lab.add_namespace(SENDER_NS)
        self.receivers = receivers
        self.frr = FrrRouter(lab, self.ns, no_kernel=True, staticd=False)
        self.vty: BgpdVty | None = None

    def start(self) -> "SenderFrr":
        self.frr.start(sender_config(self.receivers))
        self.vty = BgpdVty(self.frr)
        self.lab.on_teardown("sender vty", self.vty.close)
        return self

    @property
    def bgpd_pid(self) -> int:
        return self.frr.pids()["bgpd"]

    def _vty(self) -> BgpdVty:
        assert self.vty is not None, "the sender FRR was not started"
        return self.vty

    def set_shutdown(self, link: Link, shutdown: bool) -> None:
        no = "" if shutdown else "no "
        self.frr.configure(f"router bgp {SENDER_AS}\n {no}neighbor {link.address} shutdown\n")

    def session_drops(self, link: Link) -> tuple[int, str]:
        """How often FRR's session on ``link`` went down so far, and why it last did."""
        info = self._vty().json(f"show bgp neighbors {link.address} json").get(link.address, {})
        return info.get("connectionsDropped", 0), info.get("lastResetDueTo", "")

    def prefixes_from(self, link: Link, family: str) -> int:
        """``pfxRcd``: what FRR accepted from the peer on ``link`` in ``family``."""
        return prefixes_received(self._vty(), link.address, family)


def prefixes_received(vty: BgpdVty, peer: str, family: str) -> int:
    """``pfxRcd`` of ``peer`` in ``family``, from bgpd's summary."""
    peers = vty.json(frr_summary_command(family)).get("peers", {})
    return int(peers.get(peer, {}).get("pfxRcd", 0))
