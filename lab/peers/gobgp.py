"""gobgpd inside one lab namespace, driven over its gRPC API from the test process.

gobgpd starts with no config file and its API on a unix socket in the lab's
work directory (``--api-hosts unix:///...``): the socket is reachable from the
test process although the daemon's network stack is inside the namespace.

The stubs come from the Debian package's ``.proto`` files and are generated
by ``.ci/setup`` into ``lab/peers/gobgp_api`` (never committed). GoBGP's API
wraps every NLRI, attribute, RD and extended community in
``google.protobuf.Any``; this module hides that and returns plain dicts.

grpc, protobuf and the stubs are optional (the ``test`` extra and ``.ci/setup``):
without them this module still imports, so the modules that use it can import it at
their top; :data:`STUBS_MISSING` says what is missing, and :class:`GoBgp`,
:func:`family` and the message helpers raise ImportError with that text.  The names
that need them (``api``, ``attr``, ``api_grpc``, ``FAMILIES``) are then not defined,
so ``from l3fab.lab.peers.gobgp import api`` raises ImportError.
"""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from l3fab.lab.netns import Lab, Namespace, Process, wait_until

STUBS_MISSING: str | None  # None when grpc, protobuf and the generated stubs all import
try:
    import grpc
    from google.protobuf import any_pb2

    from l3fab.lab.peers.gobgp_api import attribute_pb2 as attr
    from l3fab.lab.peers.gobgp_api import gobgp_pb2 as api
    from l3fab.lab.peers.gobgp_api import gobgp_pb2_grpc as api_grpc
except ImportError as exc:  # pragma: no cover - depends on .ci/setup having run
    STUBS_MISSING = f"GoBGP gRPC stubs missing ({exc}); run .ci/setup"
else:
    STUBS_MISSING = None


def require_stubs() -> None:
    """Raise ImportError (saying what to run) when grpc, protobuf or the stubs are missing."""
    if STUBS_MISSING is not None:
        raise ImportError(STUBS_MISSING)


ORIGINS = {"igp": 0, "egp": 1, "incomplete": 2}
ORIGIN_NAMES = {v: k for k, v in ORIGINS.items()}
RT_SUBTYPE = 0x02  # RFC 4360: route target sub-type of the AS/IPv4-specific types


@dataclass(frozen=True)
class Family:
    """An AFI/SAFI pair under the names used by tests and by GoBGP."""

    name: str
    afi: int
    safi: int

    @property
    def vpn(self) -> bool:
        return self.safi == api.Family.SAFI_MPLS_VPN

    @property
    def ipv4(self) -> bool:
        return self.afi == api.Family.AFI_IP

    def message(self) -> api.Family:
        return api.Family(afi=self.afi, safi=self.safi)


if STUBS_MISSING is None:  # else FAMILIES is not defined: importing it raises ImportError
    FAMILIES = {
        "ipv4": Family("ipv4", api.Family.AFI_IP, api.Family.SAFI_UNICAST),
        "ipv6": Family("ipv6", api.Family.AFI_IP6, api.Family.SAFI_UNICAST),
        "vpnv4": Family("vpnv4", api.Family.AFI_IP, api.Family.SAFI_MPLS_VPN),
        "vpnv6": Family("vpnv6", api.Family.AFI_IP6, api.Family.SAFI_MPLS_VPN),
    }
FAMILY_ALIASES = {
    "ipv4-unicast": "ipv4", "ipv6-unicast": "ipv6",
    "l3vpn-ipv4-unicast": "vpnv4", "l3vpn-ipv6-unicast": "vpnv6",
}


def family(name: str | Family) -> Family:
    require_stubs()
    if isinstance(name, Family):
        return name
    key = FAMILY_ALIASES.get(name, name)
    try:
        return FAMILIES[key]
    except KeyError:
        raise ValueError(f"family {name!r}: expected one of {sorted(FAMILIES)}") from None


def _pack(message: Any) -> any_pb2.Any:
    require_stubs()
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return wrapped


def _unpack(wrapped: any_pb2.Any) -> Any:
    """Unpack an ``Any`` into the concrete message class its type URL names."""
    require_stubs()
    name = wrapped.TypeName().rsplit(".", 1)[-1]
    cls = getattr(attr, name, None) or getattr(api, name, None)
    if cls is None:
        raise ValueError(f"unknown GoBGP message type {wrapped.TypeName()!r}")
    message = cls()
    wrapped.Unpack(message)
    return message


# -- route distinguishers, route targets, communities ----------------------

def _split_admin(text: str, what: str) -> tuple[str, int]:
    admin, sep, assigned = text.rpartition(":")
    if not sep or not admin:
        raise ValueError(f"{what} {text!r}: expected ADMIN:NUMBER")
    return admin, int(assigned)


def rd_message(rd: str) -> any_pb2.Any:
    """RFC 4364 RD ``65000:1``, ``4200000000:1`` or ``10.0.0.1:1`` as GoBGP's Any."""
    require_stubs()
    admin, assigned = _split_admin(rd, "route distinguisher")
    if "." in admin:
        return _pack(attr.RouteDistinguisherIPAddress(admin=admin, assigned=assigned))
    asn = int(admin)
    if asn <= 0xFFFF:
        return _pack(attr.RouteDistinguisherTwoOctetASN(admin=asn, assigned=assigned))
    return _pack(attr.RouteDistinguisherFourOctetASN(admin=asn, assigned=assigned))


def route_target_message(rt: str) -> any_pb2.Any:
    """Route target ``65000:1`` (``target:`` prefix optional) as GoBGP's extended community."""
    require_stubs()
    text = rt.removeprefix("target:")
    admin, local = _split_admin(text, "route target")
    if "." in admin:
        return _pack(attr.IPv4AddressSpecificExtended(
            is_transitive=True, sub_type=RT_SUBTYPE, address=admin, local_admin=local))
    asn = int(admin)
    cls = attr.TwoOctetAsSpecificExtended if asn <= 0xFFFF else attr.FourOctetAsSpecificExtended
    return _pack(cls(is_transitive=True, sub_type=RT_SUBTYPE, asn=asn, local_admin=local))


def community_value(community: str | int) -> int:
    if isinstance(community, int):
        return community
    high, _, low = community.partition(":")
    return (int(high) << 16) | int(low)


def _rd_text(message: Any) -> str:
    return f"{message.admin}:{message.assigned}"


def _ext_community_text(message: Any) -> str:
    """``target:ADMIN:N`` for route targets, ``ext:<type>:ADMIN:N`` for the rest."""
    admin = getattr(message, "asn", None) or getattr(message, "address", "")
    kind = "target" if getattr(message, "sub_type", None) == RT_SUBTYPE else (
        f"ext-{type(message).__name__}-{getattr(message, 'sub_type', '?')}")
    return f"{kind}:{admin}:{getattr(message, 'local_admin', '')}"


# -- paths -----------------------------------------------------------------

def build_path(fam: Family, prefix: str, nexthop: str, *, rd: str | None = None,
               route_targets: Iterable[str] = (), label: int | None = None,
               origin: str = "igp", communities: Iterable[str | int] = (),
               as_path: Sequence[int] = (), med: int | None = None,
               local_pref: int | None = None) -> api.Path:
    """An ``api.Path`` for ``AddPath``. IPv6 next hops travel in MP_REACH_NLRI (RFC 8950 for IPv4)."""
    require_stubs()
    net = ipaddress.ip_network(prefix, strict=False)
    if (net.version == 4) != fam.ipv4:
        raise ValueError(f"prefix {prefix!r} does not belong to family {fam.name}")
    if fam.vpn:
        if rd is None or label is None:
            raise ValueError(f"{fam.name} route {prefix}: rd and label are required")
        nlri = attr.LabeledVPNIPAddressPrefix(labels=[label], rd=rd_message(rd),
                                              prefix_len=net.prefixlen,
                                              prefix=str(net.network_address))
    else:
        nlri = attr.IPAddressPrefix(prefix_len=net.prefixlen, prefix=str(net.network_address))
    nlri_any = _pack(nlri)
    pattrs = [_pack(attr.OriginAttribute(origin=ORIGINS[origin]))]
    if as_path:
        pattrs.append(_pack(attr.AsPathAttribute(segments=[
            attr.AsSegment(type=attr.AsSegment.AS_SEQUENCE, numbers=list(as_path))])))
    if fam.name == "ipv4" and ipaddress.ip_address(nexthop).version == 4:
        pattrs.append(_pack(attr.NextHopAttribute(next_hop=nexthop)))
    else:
        pattrs.append(_pack(attr.MpReachNLRIAttribute(
            family=fam.message(), next_hops=[nexthop], nlris=[nlri_any])))
    if med is not None:
        pattrs.append(_pack(attr.MultiExitDiscAttribute(med=med)))
    if local_pref is not None:
        pattrs.append(_pack(attr.LocalPrefAttribute(local_pref=local_pref)))
    values = [community_value(c) for c in communities]
    if values:
        pattrs.append(_pack(attr.CommunitiesAttribute(communities=values)))
    rts = [route_target_message(rt) for rt in route_targets]
    if rts:
        pattrs.append(_pack(attr.ExtendedCommunitiesAttribute(communities=rts)))
    return api.Path(nlri=nlri_any, pattrs=pattrs, family=fam.message())


def path_to_dict(fam: Family, path: api.Path) -> dict[str, Any]:
    """A received or local path as plain data (see :meth:`GoBgp.list_path`)."""
    require_stubs()
    nlri = _unpack(path.nlri)
    out: dict[str, Any] = {
        "family": fam.name,
        "prefix": f"{nlri.prefix}/{nlri.prefix_len}",
        "rd": _rd_text(_unpack(nlri.rd)) if fam.vpn else None,
        "labels": list(getattr(nlri, "labels", [])),
        "nexthop": None, "nexthops": [], "origin": None, "as_path": [],
        "communities": [], "route_targets": [], "ext_communities": [],
        "med": None, "local_pref": None,
        "best": path.best,
        "neighbor": None if path.neighbor_ip in ("", "<nil>") else path.neighbor_ip,
        "local": path.neighbor_ip in ("", "<nil>"),
        "source_asn": path.source_asn or None,
    }
    for wrapped in path.pattrs:
        a = _unpack(wrapped)
        if isinstance(a, attr.OriginAttribute):
            out["origin"] = ORIGIN_NAMES.get(a.origin, a.origin)
        elif isinstance(a, attr.AsPathAttribute):
            out["as_path"] = [asn for seg in a.segments for asn in seg.numbers]
        elif isinstance(a, attr.NextHopAttribute):
            out["nexthops"].append(a.next_hop)
        elif isinstance(a, attr.MpReachNLRIAttribute):
            out["nexthops"].extend(a.next_hops)
        elif isinstance(a, attr.MultiExitDiscAttribute):
            out["med"] = a.med
        elif isinstance(a, attr.LocalPrefAttribute):
            out["local_pref"] = a.local_pref
        elif isinstance(a, attr.CommunitiesAttribute):
            out["communities"] = [f"{c >> 16}:{c & 0xFFFF}" for c in a.communities]
        elif isinstance(a, attr.ExtendedCommunitiesAttribute):
            texts = [_ext_community_text(_unpack(c)) for c in a.communities]
            out["ext_communities"] = texts
            out["route_targets"] = [t.removeprefix("target:") for t in texts
                                    if t.startswith("target:")]
    out["nexthop"] = out["nexthops"][0] if out["nexthops"] else None
    return out


def _family_name(message: api.Family) -> str:
    for fam in FAMILIES.values():
        if (fam.afi, fam.safi) == (message.afi, message.safi):
            return fam.name
    return f"{message.afi}/{message.safi}"


def peer_to_dict(peer: api.Peer) -> dict[str, Any]:
    require_stubs()
    state = peer.state
    return {
        "address": state.neighbor_address or peer.conf.neighbor_address,
        "interface": peer.conf.neighbor_interface or None,
        "peer_as": state.peer_asn or peer.conf.peer_asn,
        "local_as": state.local_asn or peer.conf.local_asn,
        "state": api.PeerState.SessionState.Name(state.session_state).lower(),
        "admin_state": api.PeerState.AdminState.Name(state.admin_state).lower(),
        "router_id": state.router_id or None,
        "flops": state.flops,
        "families": {
            _family_name(af.state.family): {
                "received": af.state.received, "accepted": af.state.accepted,
                "advertised": af.state.advertised}
            for af in peer.afi_safis},
    }


class GoBgp:
    """A gobgpd process in ``ns`` plus a gRPC client for it."""

    def __init__(self, lab: Lab, ns: Namespace | str, *, log_level: str = "info",
                 rpc_timeout: float = 10.0):
        require_stubs()
        self.lab = lab
        self.ns = lab.namespace(ns)
        self.name = self.ns.name
        self.log_level = log_level
        self.rpc_timeout = rpc_timeout
        self.dir = lab.workdir / f"gobgp-{self.name}"
        self.socket = self.dir / "api.sock"
        self.process: Process | None = None
        self.channel: grpc.Channel | None = None
        self.stub: api_grpc.GobgpApiStub | None = None

    # -- life cycle ------------------------------------------------------

    def start(self, timeout: float = 15.0) -> "GoBgp":
        """Start gobgpd and wait until its API answers (BGP itself starts with :meth:`start_bgp`)."""
        binary = shutil.which("gobgpd")
        if binary is None:
            raise FileNotFoundError("gobgpd is not installed (Debian package gobgpd)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lab.on_teardown(f"gobgp {self.name}", self.stop)
        process = self.process = self.lab.popen(self.ns, [
            binary, f"--api-hosts=unix://{self.socket}", "--log-plain",
            f"--log-level={self.log_level}", "--pprof-disable"], name="gobgpd")

        def socket_ready() -> bool:
            if not process.alive():
                raise RuntimeError(f"gobgpd exited with {process.popen.returncode}: "
                                   f"{process.log_text(2000)}")
            return self.socket.exists()

        # Connect only once the socket exists: a failed first connect makes gRPC
        # back off for a second before it tries again.
        wait_until(socket_ready, timeout, 0.02, what=f"gobgpd API socket {self.socket}",
                   retry_on=())
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.stub = api_grpc.GobgpApiStub(self.channel)
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        return self

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is not None:
            self.lab.stop(self.process)

    @property
    def pid(self) -> int:
        """gobgpd's process id (once :meth:`start` ran)."""
        if self.process is None:
            raise RuntimeError(f"gobgp {self.name} is not started")
        return self.process.pid

    def _api(self) -> api_grpc.GobgpApiStub:
        if self.stub is None:
            raise RuntimeError(f"gobgp {self.name} is not started")
        return self.stub

    # -- BGP instance and peers ------------------------------------------

    def start_bgp(self, asn: int, router_id: str, listen_port: int = 179,
                  listen_addresses: Sequence[str] = ()) -> None:
        """StartBgp. ``listen_port=-1`` makes gobgpd not listen at all."""
        self._api().StartBgp(api.StartBgpRequest(**{"global": api.Global(
            asn=asn, router_id=router_id, listen_port=listen_port,
            listen_addresses=list(listen_addresses))}), timeout=self.rpc_timeout)

    def add_peer(self, address: str | None, peer_as: int, *, interface: str | None = None,
                 families: Iterable[str] = ("ipv4", "ipv6"), passive: bool = False,
                 connect_retry: int = 1, hold_time: int | None = None,
                 local_address: str | None = None, description: str = "") -> None:
        """AddPeer.

        ``address`` may be a link-local address; then ``interface`` gives its
        zone (``fe80::1%eth0``). With ``address=None`` and ``interface`` set,
        gobgpd finds the only link-local neighbour on that interface itself
        (it must already be in the neighbour table).

        Against FRR 8.4 over link-local addresses GoBGP must not be passive:
        FRR never dials a ``neighbor fe80::... interface IF`` ("Waiting for
        NHT") unless the peer sends router advertisements, so GoBGP has to
        connect, and its first attempt comes after a random 5-10 s.
        """
        conf = api.PeerConf(peer_asn=peer_as, description=description)
        if address is None:
            if interface is None:
                raise ValueError("add_peer needs an address or an interface")
            conf.neighbor_interface = interface
        elif interface is not None and ipaddress.ip_address(address).is_link_local:
            conf.neighbor_address = f"{address}%{interface}"
        else:
            conf.neighbor_address = address
        timers = api.TimersConfig(connect_retry=connect_retry)
        if hold_time is not None:
            timers.hold_time = hold_time
            timers.keepalive_interval = max(1, hold_time // 3)
        transport = api.Transport(passive_mode=passive, local_address=local_address or "")
        afi_safis = [api.AfiSafi(config=api.AfiSafiConfig(family=family(f).message(), enabled=True))
                     for f in families]
        self._api().AddPeer(api.AddPeerRequest(peer=api.Peer(
            conf=conf, timers=api.Timers(config=timers), transport=transport,
            afi_safis=afi_safis)), timeout=self.rpc_timeout)

    def delete_peer(self, address: str, interface: str = "") -> None:
        self._api().DeletePeer(api.DeletePeerRequest(address=address, interface=interface),
                               timeout=self.rpc_timeout)

    def list_peers(self) -> list[dict[str, Any]]:
        """Every peer as ``{address, peer_as, state ('established', 'active', ...), ...}``."""
        responses = self._api().ListPeer(api.ListPeerRequest(enableAdvertised=True),
                                         timeout=self.rpc_timeout)
        return [peer_to_dict(r.peer) for r in responses]

    def peer_state(self, address: str) -> str | None:
        for peer in self.list_peers():
            if peer["address"] == address or peer["address"].split("%")[0] == address:
                return peer["state"]
        return None

    def established(self, *addresses: str) -> bool:
        peers = self.list_peers()
        if not addresses:
            return bool(peers) and all(p["state"] == "established" for p in peers)
        return all(self.peer_state(a) == "established" for a in addresses)

    # -- paths -----------------------------------------------------------

    def add_path(self, family_name: str, prefix: str, nexthop: str, **kwargs: Any) -> bytes:
        """AddPath to the global table; returns the path's UUID.

        Keyword arguments are those of :func:`build_path`: ``rd``,
        ``route_targets``, ``label``, ``origin``, ``communities``, ``as_path``,
        ``med``, ``local_pref``.
        """
        path = build_path(family(family_name), prefix, nexthop, **kwargs)
        response = self._api().AddPath(api.AddPathRequest(table_type=api.GLOBAL, path=path),
                                       timeout=self.rpc_timeout)
        return response.uuid

    def delete_path(self, family_name: str, uuid: bytes) -> None:
        self._api().DeletePath(api.DeletePathRequest(
            table_type=api.GLOBAL, family=family(family_name).message(), uuid=uuid),
            timeout=self.rpc_timeout)

    def list_path(self, family_name: str, table: str = "global",
                  neighbor: str = "") -> list[dict[str, Any]]:
        """ListPath as plain dicts, one per path (not per destination).

        Keys: family, prefix, rd, labels, nexthop, nexthops, origin, as_path,
        communities, route_targets (``ASN:N``), ext_communities, med,
        local_pref, best, neighbor (None for local paths), local.
        ``table`` is global, local, adj-in or adj-out (adj-* need ``neighbor``).
        """
        fam = family(family_name)
        table_type = {"global": api.GLOBAL, "local": api.LOCAL,
                      "adj-in": api.ADJ_IN, "adj-out": api.ADJ_OUT}[table]
        responses = self._api().ListPath(api.ListPathRequest(
            table_type=table_type, name=neighbor, family=fam.message()), timeout=self.rpc_timeout)
        return [path_to_dict(fam, p) for r in responses for p in r.destination.paths]

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"GoBgp({self.name!r}, pid={pid})"
