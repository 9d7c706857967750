"""The Linux kernel backend: makes the kernel match a DataplaneSpec plus the
remote routes the speaker imported, and nothing else.

Level-triggered, like :mod:`fib`: every ``apply`` reads what l3fab's tagged
objects look like now and changes only the difference, so running it again, or
after a restart, changes nothing that is already right (no flap, counters kept).

- routes (tenant tables, SID and handle routes in main): one :class:`fib.Fib` for
  protocol 211; stale ones are deleted only once the speaker has converged;
- ip rules: priorities 90/100 with protocol 211;
- gateway addresses, link MTU/state, per-interface sysctls: on endpoint links only;
- VRF devices where the kernel has them (``l3v-<vni>``), else ``ip rule iif``;
- nftables table ``inet l3fab`` (:mod:`dataplane.nft`) and tc (:mod:`dataplane.tc`).

An endpoint whose interface does not exist yet (a VM not started) is left out
and reported as waiting; :meth:`apply` picks it up once the interface appears.

**Fail closed.**  The nftables filter is put in place *first*.  When nft refuses the
new table (the old one stays: the replace is one transaction), an endpoint the
installed table does not cover is not plumbed at all (reported as waiting, with nft's
reason, and in :attr:`LinuxDataplane.filter_error`): no endpoint ever forwards without
its anti-spoofing, whatever another endpoint's element did to the update.

**Strangers.**  The filter gets a :class:`nft.Guard`: interfaces that are neither an
endpoint nor trusted cannot reach the underlay prefixes, the locator (SIDs), the
host's addresses, the gateway or the End.DX4 handles.  Trusted are ``lo``, the
uplinks (the unnumbered neighbours' interfaces), and every interface that carries a
global address (the host's own networks: numbered uplinks, management); l3fab gives
endpoint links only link-local addresses, so a removed endpoint's link, or a VM's TAP
never added, is a stranger.  Removing an endpoint also takes its gateway addresses
off and releases it from its VRF device: nothing of it is left that forwards.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import replace
from typing import Iterable

from l3fab.fib.controller import Fib
from l3fab.fib.model import FibRoute

from . import features as kernel_features
from . import nft, tc
from . import plan as planner
from .iproute import DataplaneError, Ip, Rule, read_sysctl, write_sysctl
from .model import (
    ENCAP_OVERHEAD,
    GATEWAY4,
    GATEWAY6,
    RTPROT_L3FAB_VRF,
    RULE_PREFS,
    VRF_PREFIX,
    DataplaneSpec,
    PortSpec,
    RemoteRoute,
)

log = logging.getLogger("l3fab.dataplane")

GLOBAL_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
PORT_SYSCTLS = {("ipv4", "rp_filter"): "0",  # source validation is nftables' job (per endpoint, exact)
                ("ipv6", "accept_ra"): "0",
                ("ipv6", "addr_gen_mode"): "1"}  # none: the host side's only link-local is fe80::1


def interface_index(ifname: str) -> int | None:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return None


def interface_exists(ifname: str) -> bool:
    return interface_index(ifname) is not None


class LinuxDataplane:
    def __init__(self, *, fib: Fib | None = None, ip: Ip | None = None, features=None,
                 uplinks: Iterable[str] = (), use_nft: bool = True, use_tc: bool = True) -> None:
        self.fib = fib if fib is not None else Fib(protocol=RTPROT_L3FAB_VRF)
        self.ip = ip or Ip()
        self._features = features
        self.uplinks = tuple(uplinks)
        self.use_nft = use_nft
        self.use_tc = use_tc
        self.spec: DataplaneSpec | None = None
        self.applied: DataplaneSpec | None = None  # the spec with only ports whose interface exists
        self.waiting: dict[str, str] = {}  # endpoint -> why it is not plumbed
        self.local: dict[int, dict[str, FibRoute]] = {}
        self.remote: dict[int, dict[str, FibRoute]] = {}
        self.errors: list[str] = []
        self.endpoint_mtu: int | None = None
        self.preserved = 0
        self._previous_ports: tuple = ()
        self.seen_interfaces: dict[str, int | None] = {}  # endpoint interface -> ifindex at the last apply
        self.tc_notes: list[str] = []
        self.filter_error: str | None = None  # why the last nftables update failed; None: the filter is current
        self.filtered: frozenset[tuple[str, str, str | None, str | None]] = frozenset()  # ports the table covers
        self.gateway_links: set[str] = set()  # interfaces l3fab gave gateway addresses (until taken off)

    # ------------------------------------------------------------------ features

    @property
    def features(self):
        if self._features is None:
            self._features = kernel_features.detect()
        return self._features

    @property
    def vrf_devices(self) -> bool:
        return bool(getattr(self.features, "vrf", False))

    # ------------------------------------------------------------------ life cycle

    def start(self) -> bool:
        """Read what a previous run left; True when tenant forwarding state exists."""
        self.fib.start()
        self.preserved = sum(1 for _ in self.fib.installed())
        return self.preserved > 0

    def converged(self) -> None:
        """The speaker has its full RIB: stale tenant routes may go now."""
        self._record(self.fib.converged().errors)

    def _record(self, errors: Iterable[str]) -> None:
        for e in errors:
            log.error("dataplane: %s", e)
            self.errors = (self.errors + [str(e)])[-50:]

    # ------------------------------------------------------------------ local state

    def underlay_mtu(self) -> int | None:
        mtus = []
        for ifname in self.uplinks:
            link = self.ip.link(ifname)
            if link and link.get("mtu"):
                mtus.append(int(link["mtu"]))
        return min(mtus) if mtus else None

    def apply(self, spec: DataplaneSpec) -> list[str]:
        """Make the kernel hold ``spec``; returns the errors (also kept in ``errors``)."""
        self.spec = spec
        errors: list[str] = []
        ready = []
        self.waiting = {}
        for port in spec.ports:
            if interface_exists(port.ifname):
                ready.append(port)
            else:
                self.waiting[port.name] = f"interface {port.ifname} does not exist (yet)"
        self.seen_interfaces = {p.ifname: interface_index(p.ifname) for p in spec.ports}
        spec_now = replace(spec, ports=tuple(ready))
        if self.use_nft:  # first: what the filter does not cover is not plumbed
            spec_now, nft_errors = self._filter(spec, spec_now)
            errors += nft_errors
        self._previous_ports = self.applied.ports if self.applied else ()
        self.applied = spec_now
        mtu = spec.endpoint_mtu
        if mtu is None:
            under = self.underlay_mtu()
            mtu = under - ENCAP_OVERHEAD if under else None
        self.endpoint_mtu = mtu
        plan = planner.build(spec_now, self.vrf_devices)
        for step in (self._sysctls, self._tunnel_source, self._anchor, self._links, self._vrf_devices,
                     self._addresses, self._release, self._rules, self._routes, self._tc):
            try:
                errors += step(spec_now, plan) or []
            except DataplaneError as e:
                errors.append(str(e))
        self._record(errors)
        return errors

    def interfaces_changed(self) -> bool:
        """An endpoint interface appeared, vanished or was re-created since the last apply
        (a VM started or stopped): its routes went with it in the kernel."""
        return any(interface_index(name) != index for name, index in self.seen_interfaces.items())

    def refresh(self) -> list[str]:
        """Apply again after interfaces changed: re-resolve interface indexes, re-read the
        kernel and put back what the kernel dropped with a vanished device."""
        if self.spec is None:
            return []
        self.fib.kernel.forget_interfaces()
        with self.fib.batch():
            for table in list(self.local):  # re-encoded below with the new interface indexes
                self.fib.set_desired(table, {}, apply=False)
            errors = self.apply(self.spec)
        self._record(self.fib.reconcile().errors)
        return errors

    def _sysctls(self, spec: DataplaneSpec, plan) -> list[str]:
        errors = []
        for key, value in GLOBAL_SYSCTLS.items():
            try:
                write_sysctl(key, value)
            except DataplaneError as e:
                errors.append(str(e))
        for port in spec.ports:
            for (fam, name), value in PORT_SYSCTLS.items():
                try:
                    write_sysctl(("net", fam, "conf", port.ifname, name), value)
                except DataplaneError as e:
                    errors.append(f"endpoint {port.name}: {e}")
        return errors

    def _tunnel_source(self, spec: DataplaneSpec, plan) -> list[str]:
        if self.ip.tunsrc() != spec.tunnel_source:
            self.ip.run("sr", "tunsrc", "set", spec.tunnel_source)
        return []

    def _anchor(self, spec: DataplaneSpec, plan) -> list[str]:
        """The device remote routes point at (see :mod:`dataplane.plan`)."""
        name = planner.ENCAP_DEVICE
        link = self.ip.link(name)
        if link is None:
            try:
                self.ip.run("link", "add", name, "type", "dummy", what=f"anchor device {name}")
            except DataplaneError:  # no dummy driver: a veth pair nobody else uses
                self.ip.run("link", "add", name, "type", "veth", "peer", "name", planner.ENCAP_DEVICE_PEER,
                            what=f"anchor device {name} (veth)")
            link = self.ip.link(name)
        mtu = (self.endpoint_mtu + ENCAP_OVERHEAD) if self.endpoint_mtu else 1500
        if link is not None and int(link.get("mtu", 0)) != mtu:
            self.ip.run("link", "set", "dev", name, "mtu", str(mtu), what=f"mtu {mtu} on {name}")
            if self.ip.link(planner.ENCAP_DEVICE_PEER) is not None:
                self.ip.run("link", "set", "dev", planner.ENCAP_DEVICE_PEER, "mtu", str(mtu))
        for dev in (name, planner.ENCAP_DEVICE_PEER):
            link = self.ip.link(dev)
            if link is not None and "UP" not in link.get("flags", []):
                self.ip.run("link", "set", "dev", dev, "up")
        return []

    def _links(self, spec: DataplaneSpec, plan) -> list[str]:
        errors = []
        for port in spec.ports:
            link = self.ip.link(port.ifname)
            if link is None:
                continue
            try:
                if self.endpoint_mtu and int(link.get("mtu", 0)) != self.endpoint_mtu:
                    self.ip.run("link", "set", "dev", port.ifname, "mtu", str(self.endpoint_mtu),
                                what=f"endpoint {port.name}: mtu {self.endpoint_mtu} on {port.ifname}")
                if "UP" not in link.get("flags", []):
                    self.ip.run("link", "set", "dev", port.ifname, "up", what=f"endpoint {port.name}: {port.ifname} up")
            except DataplaneError as e:
                errors.append(str(e))
        return errors

    def _vrf_devices(self, spec: DataplaneSpec, plan) -> list[str]:
        if not self.vrf_devices:
            return []
        errors = []
        have = {lk["ifname"]: lk for lk in self.ip.links()}
        created = set()
        for name, table in plan.vrf_devices.items():
            link = have.get(name)
            kind = ((link or {}).get("linkinfo") or {})
            if link is not None and (kind.get("info_data") or {}).get("table") != table:
                self.ip.run("link", "del", "dev", name)  # its ports are released: enslaved again below
                link = None
            if link is None:
                self.ip.run("link", "add", name, "type", "vrf", "table", str(table))
                created.add(name)
            if link is None or "UP" not in link.get("flags", []):
                self.ip.run("link", "set", "dev", name, "up")
        for name in have:
            if name.startswith(VRF_PREFIX) and name not in plan.vrf_devices:
                self.ip.run("link", "del", "dev", name)
        for ifname, master in plan.enslave.items():
            if master in created or (have.get(ifname) or {}).get("master") != master:
                try:
                    self.ip.run("link", "set", "dev", ifname, "master", master)
                except DataplaneError as e:
                    errors.append(str(e))
        return errors

    def _addresses(self, spec: DataplaneSpec, plan) -> list[str]:
        errors = []
        self.gateway_links.update(ifname for ifname in plan.addresses if ifname != "lo")
        for ifname, wanted in plan.addresses.items():
            have = {(a, p) for a, p, _s in self.ip.addresses(ifname)}
            for addr, plen in wanted:
                if (addr, plen) in have:
                    continue
                args = ["addr", "add", f"{addr}/{plen}", "dev", ifname]
                if ":" not in addr and ifname != "lo":
                    args += ["scope", "link"]
                if ":" in addr:
                    args = ["-6", *args, "nodad"]
                try:
                    self.ip.run(*args, what=f"address {addr}/{plen} on {ifname}")
                except DataplaneError as e:
                    errors.append(str(e))
            if ifname != "lo":  # the host side of an endpoint link: no other link-local
                for addr, plen, _scope in self.ip.addresses(ifname):
                    if addr.startswith("fe80:") and addr != GATEWAY6:
                        self.ip.run("-6", "addr", "del", f"{addr}/{plen}", "dev", ifname)
        return errors

    def _release(self, spec: DataplaneSpec, plan) -> list[str]:
        """Links that are no longer endpoints (removed, or withheld): their gateway
        addresses go and they leave l3fab's VRF device, so nothing on them forwards
        (their routes and rules go with the plan; nftables treats them as strangers)."""
        errors = []
        for ifname in sorted(self.gateway_links - set(plan.addresses)):
            link = self.ip.link(ifname)
            if link is None:  # gone, and its addresses with it
                self.gateway_links.discard(ifname)
                continue
            try:
                have = {(a, p) for a, p, _s in self.ip.addresses(ifname)}
                for addr, plen in ((GATEWAY4, 32), (GATEWAY6, 64)):
                    if (addr, plen) in have:
                        self.ip.run(*(["-6"] if ":" in addr else []), "addr", "del", f"{addr}/{plen}", "dev", ifname,
                                    what=f"removing gateway {addr}/{plen} from {ifname}")
                if str(link.get("master", "")).startswith(VRF_PREFIX):
                    self.ip.run("link", "set", "dev", ifname, "nomaster", what=f"releasing {ifname} from its VRF")
            except DataplaneError as e:
                errors.append(str(e))
                continue
            self.gateway_links.discard(ifname)
        return errors

    def _ours(self, rule: Rule) -> bool:
        # Both tags: a rule at the same priority without l3fab's protocol is someone else's.
        return rule.pref in RULE_PREFS and rule.protocol == RTPROT_L3FAB_VRF

    def _rules(self, spec: DataplaneSpec, plan) -> list[str]:
        errors = []
        wanted = {r.identity(): r for r in plan.rules}
        for fam in (4, 6):
            have = [r for r in self.ip.rules(fam) if self._ours(r)]
            seen = set()
            for r in have:
                if r.identity() in wanted and r.identity() not in seen:
                    seen.add(r.identity())
                    continue
                try:
                    self.ip.run(f"-{fam}", "rule", "del", *r.args())
                except DataplaneError as e:
                    errors.append(str(e))
            for ident, r in wanted.items():
                if r.family == fam and ident not in seen:
                    try:
                        self.ip.run(f"-{fam}", "rule", "add", *r.args())
                    except DataplaneError as e:
                        errors.append(str(e))
        return errors

    def _routes(self, spec: DataplaneSpec, plan) -> list[str]:
        self.local = plan.routes
        tables = set(self.local) | set(self.remote) | set(self.fib._routes)
        with self.fib.batch() as box:
            for table in tables:
                self.fib.set_desired(table, self._table(table), apply=False)
        return [str(e) for e in (box.value.errors if box.value else [])]

    def _table(self, table: int) -> dict[str, FibRoute]:
        out = dict(self.remote.get(table, {})) if table in self._tenant_tables() else {}
        out.update(self.local.get(table, {}))  # a local endpoint wins over a remote copy of itself
        return out

    def _tenant_tables(self) -> set[int]:
        return {v.table for v in self.spec.vrfs} if self.spec else set()

    @staticmethod
    def _covers(port: PortSpec) -> tuple[str, str, str | None, str | None]:
        """What the filter holds of a port: a port is covered when all of it is."""
        return (port.name, port.ifname, port.ipv4, port.ipv6)

    def guard(self, spec: DataplaneSpec) -> nft.Guard:
        """Trusted interfaces (``lo``, the uplinks, interfaces with a global address; never
        an endpoint's) and the host's global addresses, read from the kernel now."""
        endpoint_links = {p.ifname for p in spec.ports}
        trusted = {"lo", *self.uplinks}
        hosts: set[str] = set()
        for entry in self.ip.json("addr", "show"):
            glob = [a["local"] for a in entry.get("addr_info", []) if a.get("scope") == "global" and a.get("local")]
            if glob:
                trusted.add(str(entry.get("ifname", "")))
                hosts.update(glob)
        # a name nft cannot take is left out: that interface is a stranger (fail closed)
        names = sorted(n for n in trusted - endpoint_links if nft.valid_ifname(n))
        return nft.Guard(tuple(names), tuple(sorted(hosts)))

    def _filter(self, spec: DataplaneSpec, ready: DataplaneSpec) -> tuple[DataplaneSpec, list[str]]:
        """Put the filter for ``ready`` in place; on failure, ``ready`` without the ports
        the installed filter does not cover (they wait, with nft's reason)."""
        try:
            nft.apply(ready, guard=self.guard(spec))
        except (nft.NftError, ValueError, DataplaneError) as e:
            self.filter_error = f"nftables: {e}"
            covered = []
            for port in ready.ports:
                if self._covers(port) in self.filtered:
                    covered.append(port)
                else:
                    self.waiting[port.name] = f"not plumbed: its anti-spoofing filter is not in place ({e})"
            return replace(ready, ports=tuple(covered)), [self.filter_error]
        self.filter_error = None
        self.filtered = frozenset(self._covers(p) for p in ready.ports)
        return ready, []

    def _tc(self, spec: DataplaneSpec, plan) -> list[str]:
        if not self.use_tc:
            return []
        result = tc.apply(spec.ports, previous=self._previous_ports)
        self.tc_notes = list(result.notes)
        return list(result.errors)

    # ------------------------------------------------------------------ remote routes

    def set_remote(self, routes: Iterable[RemoteRoute]) -> list[str]:
        """Install (sids) or remove (no sids) remote tenant routes, in one batch."""
        tenant_tables = self._tenant_tables()
        with self.fib.batch() as box:
            for r in routes:
                table = self.remote.setdefault(r.table, {})
                local = self.local.get(r.table, {})
                if r.sids and r.table in tenant_tables:
                    fr = planner.remote_route(r)
                    table[fr.prefix] = fr
                    if fr.prefix not in local:
                        self.fib.update(fr)
                else:
                    prefix = _canonical(r.prefix)
                    if table.pop(prefix, None) is not None and prefix not in local:
                        self.fib.remove(r.table, prefix)
        errors = [str(e) for e in (box.value.errors if box.value else [])]
        self._record(errors)
        return errors

    def replace_remote(self, routes: Iterable[RemoteRoute]) -> list[str]:
        """Make ``routes`` the whole remote content of every tenant table."""
        new: dict[int, dict[str, FibRoute]] = {}
        for r in routes:
            if r.sids:
                fr = planner.remote_route(r)
                new.setdefault(r.table, {})[fr.prefix] = fr
        self.remote = new
        tables = set(self.local) | set(new) | set(self.fib._routes)
        with self.fib.batch() as box:
            for table in tables:
                self.fib.set_desired(table, self._table(table), apply=False)
        errors = [str(e) for e in (box.value.errors if box.value else [])]
        self._record(errors)
        return errors

    # ------------------------------------------------------------------ full stop

    def clear(self) -> list[str]:
        """Remove everything l3fab put in the kernel for tenants (a full stop)."""
        empty = DataplaneSpec(locator=self.spec.locator if self.spec else "::/128",
                              tunnel_source=self.spec.tunnel_source if self.spec else "::1")
        errors: list[str] = []
        self.remote = {}
        self.local = {}
        with self.fib.batch():
            for table in list(self.fib._routes):
                self.fib.set_desired(table, {}, apply=False)
        self._record(self.fib.converged().errors)
        for fam in (4, 6):
            for r in self.ip.rules(fam):
                if self._ours(r):
                    try:
                        self.ip.run(f"-{fam}", "rule", "del", *r.args())
                    except DataplaneError as e:
                        errors.append(str(e))
        if self.use_nft:
            nft.remove()
        if self.use_tc:
            tc.apply(empty.ports, previous=self.applied.ports if self.applied else ())
        for ifname in sorted(self.gateway_links | {p.ifname for p in (self.applied.ports if self.applied else ())}):
            for addr, plen in ((GATEWAY4, 32), (GATEWAY6, 64)):
                self.ip.batch([f"addr del {addr}/{plen} dev {ifname}"])
        self.gateway_links.clear()
        self.filtered = frozenset()
        if self.vrf_devices:
            for link in self.ip.links():
                if link["ifname"].startswith(VRF_PREFIX):
                    self.ip.batch([f"link del dev {link['ifname']}"])
        if self.ip.link(planner.ENCAP_DEVICE) is not None:
            self.ip.batch([f"link del dev {planner.ENCAP_DEVICE}"])
        return errors

    # ------------------------------------------------------------------ views

    def rules_view(self) -> list[dict]:
        out = []
        for fam in (4, 6):
            for r in self.ip.rules(fam):
                if self._ours(r):
                    out.append({"family": fam, "pref": r.pref, "iif": r.iif, "from": r.src, "table": r.table})
        return out

    def summary(self) -> dict:
        feats = self.features
        return {
            "backend": "linux",
            "vrf_mode": "vrf-device" if self.vrf_devices else "ip-rule (no VRF devices in this kernel)",
            "features": feats.summary() if hasattr(feats, "summary") else {},
            "tunnel_source": self.ip.tunsrc(),
            "endpoint_mtu": self.endpoint_mtu,
            "underlay_mtu": self.underlay_mtu(),
            "rules": self.rules_view(),
            "routes": {t: len(rs) for t, rs in sorted(self.fib._routes.items())},
            "remote_routes": sum(len(t) for t in self.remote.values()),
            "waiting": dict(self.waiting),
            "rate_limit_notes": self.tc_notes,
            "filter_error": self.filter_error,
            "converged": self.fib.is_converged,
            "preserved_at_start": self.preserved,
            "errors": self.errors[-10:],
        }


def _canonical(prefix: str) -> str:
    import ipaddress

    return str(ipaddress.ip_network(prefix, strict=False))


def sysctl_state(ifname: str) -> dict:
    return {f"{fam}.{name}": read_sysctl(("net", fam, "conf", ifname, name)) for fam, name in PORT_SYSCTLS}
