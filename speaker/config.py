"""Node configuration: YAML in, validated frozen dataclasses out.

Every problem is reported as one :class:`ConfigError` line naming the field and
the value at fault, e.g. ``neighbors[1].remote-as: 'foo' is not an ASN, 'external' or 'internal'``.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .wire.constants import IPV4_UNICAST, IPV6_UNICAST, Family

DEFAULT_API_SOCKET = "/run/l3fab/l3fab.sock"
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


class ConfigError(ValueError):
    """A configuration problem: ``field`` and ``value`` are in the message."""

    def __init__(self, path: str, value: Any, problem: str, message: str | None = None) -> None:
        self.path = path
        self.value = value
        super().__init__(message or f"{path}: {value!r} {problem}")

    @classmethod
    def from_line(cls, line: str) -> "ConfigError":
        """Wrap an already formatted ``field: value problem`` line from a lower layer."""
        path, _, _ = line.partition(": ")
        return cls(path, None, "", message=line)


@dataclass(frozen=True)
class NeighborConfig:
    """One BGP neighbour.  Either ``address`` (numbered; a link-local address needs
    ``interface``) or only ``interface`` (unnumbered: the peer's link-local address
    is discovered on that link)."""

    name: str
    remote_as: int | str
    address: str | None = None
    interface: str | None = None
    families: tuple[Family, ...] = (IPV4_UNICAST, IPV6_UNICAST)
    passive: bool = False
    hold_time: int = 9
    connect_retry: float = 2.0
    port: int = 179
    password: str | None = None
    ttl_security: bool = False
    local_address: str | None = None
    description: str = ""
    addpath_receive: tuple[Family, ...] = ()
    route_reflector_client: bool = False
    allowas_in: int = 0
    import_policy: str | None = None
    export_policy: str | None = None
    max_prefix: "MaxPrefix | None" = None
    next_hop_self: bool = False
    host_locator: str | None = None
    keep_pre_policy: bool = False
    graceful_restart: bool = True

    @property
    def unnumbered(self) -> bool:
        return self.address is None


@dataclass(frozen=True)
class MaxPrefix:
    """Per-family limit on accepted routes: Cease 6/1 above ``limit`` (RFC 4486),
    a warning at ``warning`` percent, a new session after ``restart`` seconds (0: never)."""

    limit: int
    warning: int = 75
    restart: float = 30.0


@dataclass(frozen=True)
class FibConfig:
    enabled: bool = True
    table: int = 254
    protocol: int = 210  # fib.model.RTPROT_L3FAB


@dataclass(frozen=True)
class NodeConfig:
    router_id: str
    asn: int
    neighbors: tuple[NeighborConfig, ...] = ()
    listen_addresses: tuple[str, ...] = ("::",)
    listen_port: int = 179
    api_socket: str = DEFAULT_API_SOCKET
    hostname: str = ""
    role: str = "host"
    cluster_id: str | None = None
    maximum_paths: int = 64
    multipath_relax: bool = False
    always_compare_med: bool = False
    mrai: float = 0.0
    networks: tuple[dict, ...] = ()
    fib: FibConfig = FibConfig()
    restart_time: int = 120
    convergence_timeout: float = 30.0
    policies: object = None  # speaker.policy PolicyConfig, when the config has policies
    tenancy: object = None  # tenancy.node.NodeSettings, when the node hosts tenant endpoints
    tenancy_state_file: str | None = None
    dataplane: object = None  # dataplane.intent.DataplaneSettings (with tenancy)
    source: str = field(default="", compare=False)

    def neighbor(self, key: str) -> NeighborConfig | None:
        for n in self.neighbors:
            if key in (n.name, n.address, n.interface, n.description):
                return n
        return None


# ---------------------------------------------------------------- field validators


def _asn(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ConfigError(path, v, "is not an AS number")
    text = str(v).strip()
    if "." in text:  # asdot notation
        hi, _, lo = text.partition(".")
        if hi.isdigit() and lo.isdigit() and int(hi) <= 0xFFFF and int(lo) <= 0xFFFF:
            return (int(hi) << 16) | int(lo)
        raise ConfigError(path, v, "is not an AS number")
    if not text.isdigit() or not 1 <= int(text) <= 0xFFFFFFFF:
        raise ConfigError(path, v, "is not an AS number (1-4294967295)")
    return int(text)


def _remote_as(path: str, v: Any) -> int | str:
    if isinstance(v, str) and v.strip().lower() in ("external", "internal"):
        return v.strip().lower()
    try:
        return _asn(path, v)
    except ConfigError:
        raise ConfigError(path, v, "is not an ASN, 'external' or 'internal'") from None


def _ipv4(path: str, v: Any) -> str:
    try:
        return str(ipaddress.IPv4Address(str(v)))
    except ValueError:
        raise ConfigError(path, v, "is not an IPv4 address") from None


def _ip(path: str, v: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(v).split("%")[0]))
    except ValueError:
        raise ConfigError(path, v, "is not an IP address") from None


def _int(path: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(path, v, f"is not an integer in {lo}..{hi}")
    return v


def _number(path: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ConfigError(path, v, f"is not a number in {lo}..{hi}")
    return float(v)


def _bool(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(path, v, "is not true or false")
    return v


def _str(path: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(path, v, "is not a string")
    return v


def _ifname(path: str, v: Any) -> str:
    if not isinstance(v, str) or not _IFNAME.match(v):
        raise ConfigError(path, v, "is not an interface name")
    return v


def _families(path: str, v: Any) -> tuple[Family, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        raise ConfigError(path, v, "is not a non-empty list of families (ipv4, ipv6, vpnv4, vpnv6)")
    out = []
    for i, item in enumerate(v):
        try:
            fam = Family.parse(str(item))
        except ValueError:
            raise ConfigError(f"{path}[{i}]", item, "is not a family (ipv4, ipv6, vpnv4, vpnv6)") from None
        if fam not in out:
            out.append(fam)
    return tuple(out)


def _check_keys(path: str, d: dict, allowed: set[str]) -> None:
    for k in d:
        if k not in allowed:
            where = f"{path}.{k}" if path else str(k)
            raise ConfigError(where, d[k], f"is not a known setting (known: {', '.join(sorted(allowed))})")


_NEIGHBOR_KEYS = {"name", "address", "interface", "remote-as", "families", "passive", "hold-time",
                  "connect-retry", "port", "password", "ttl-security", "local-address", "description",
                  "addpath-receive", "route-reflector-client", "allowas-in", "import-policy", "export-policy",
                  "max-prefix", "next-hop-self", "host-locator", "keep-pre-policy", "graceful-restart"}
_NODE_KEYS = {"router-id", "asn", "neighbors", "listen", "api-socket", "hostname", "role", "cluster-id",
              "maximum-paths", "multipath-relax", "always-compare-med", "mrai", "networks", "fib",
              "graceful-restart", "prefix-lists", "policies", "tenancy", "dataplane"}
ROLES = ("host", "leaf", "spine", "route-reflector")


def _neighbor(path: str, d: Any, defaults: dict) -> NeighborConfig:
    if not isinstance(d, dict):
        raise ConfigError(path, d, "is not a mapping")
    _check_keys(path, d, _NEIGHBOR_KEYS)
    address = _ip(f"{path}.address", d["address"]) if "address" in d else None
    interface = _ifname(f"{path}.interface", d["interface"]) if "interface" in d else None
    if address is None and interface is None:
        raise ConfigError(path, d, "needs an address or an interface (unnumbered)")
    if address and ipaddress.ip_address(address).is_link_local and interface is None:
        raise ConfigError(f"{path}.address", address, "is link-local and needs an interface")
    if "remote-as" not in d:
        raise ConfigError(f"{path}.remote-as", None, "is required")
    hold = _int(f"{path}.hold-time", d.get("hold-time", defaults["hold-time"]), 0, 65535)
    if hold in (1, 2):
        raise ConfigError(f"{path}.hold-time", hold, "must be 0 or at least 3 seconds")
    password = d.get("password")
    if password is not None:
        password = _str(f"{path}.password", password)
        if not 1 <= len(password.encode()) <= 80:
            raise ConfigError(f"{path}.password", "***", "must be 1-80 octets (TCP-MD5 key)")
    families = _families(f"{path}.families", d["families"]) if "families" in d else (IPV4_UNICAST, IPV6_UNICAST)
    addpath = _families(f"{path}.addpath-receive", d["addpath-receive"]) if "addpath-receive" in d else ()
    name = _str(f"{path}.name", d["name"]) if "name" in d else (address or interface)
    max_prefix = None
    if "max-prefix" in d:
        mp = d["max-prefix"]
        if isinstance(mp, int) and not isinstance(mp, bool):
            mp = {"limit": mp}
        if not isinstance(mp, dict) or "limit" not in mp:
            raise ConfigError(f"{path}.max-prefix", mp, "is not a limit or {limit, warning, restart}")
        _check_keys(f"{path}.max-prefix", mp, {"limit", "warning", "restart"})
        max_prefix = MaxPrefix(
            limit=_int(f"{path}.max-prefix.limit", mp["limit"], 1, 10**9),
            warning=_int(f"{path}.max-prefix.warning", mp.get("warning", 75), 1, 100),
            restart=_number(f"{path}.max-prefix.restart", mp.get("restart", 30), 0, 86400),
        )
    host_locator = None
    if "host-locator" in d:
        try:
            host_locator = str(ipaddress.ip_network(str(d["host-locator"]), strict=True))
        except ValueError:
            raise ConfigError(f"{path}.host-locator", d["host-locator"], "is not a prefix (the host's locator, e.g. 2001:db8:0:11::/64)") from None
    return NeighborConfig(
        name=name,
        remote_as=_remote_as(f"{path}.remote-as", d["remote-as"]),
        address=address,
        interface=interface,
        families=families,
        passive=_bool(f"{path}.passive", d.get("passive", False)),
        hold_time=hold,
        connect_retry=_number(f"{path}.connect-retry", d.get("connect-retry", defaults["connect-retry"]), 0.1, 3600),
        port=_int(f"{path}.port", d.get("port", 179), 1, 65535),
        password=password,
        ttl_security=_bool(f"{path}.ttl-security", d.get("ttl-security", False)),
        local_address=_ip(f"{path}.local-address", d["local-address"]) if "local-address" in d else None,
        description=_str(f"{path}.description", d.get("description", "")),
        addpath_receive=addpath,
        route_reflector_client=_bool(f"{path}.route-reflector-client", d.get("route-reflector-client", False)),
        allowas_in=_int(f"{path}.allowas-in", d.get("allowas-in", 0), 0, 10),
        import_policy=_str(f"{path}.import-policy", d["import-policy"]) if "import-policy" in d else None,
        export_policy=_str(f"{path}.export-policy", d["export-policy"]) if "export-policy" in d else None,
        max_prefix=max_prefix,
        next_hop_self=_bool(f"{path}.next-hop-self", d.get("next-hop-self", False)),
        host_locator=host_locator,
        keep_pre_policy=_bool(f"{path}.keep-pre-policy", d.get("keep-pre-policy", False)),
        graceful_restart=_bool(f"{path}.graceful-restart", d.get("graceful-restart", True)),
    )


def parse_config(data: Any, source: str = "") -> NodeConfig:
    """Validate a parsed YAML document."""
    if not isinstance(data, dict):
        raise ConfigError("(top level)", data, "is not a mapping")
    _check_keys("", data, _NODE_KEYS | {"defaults"})
    for req in ("router-id", "asn"):
        if req not in data:
            raise ConfigError(req, None, "is required")
    defaults = {"hold-time": 9, "connect-retry": 2.0}
    if "defaults" in data:
        if not isinstance(data["defaults"], dict):
            raise ConfigError("defaults", data["defaults"], "is not a mapping")
        _check_keys("defaults", data["defaults"], {"hold-time", "connect-retry"})
        defaults.update(data["defaults"])
    listen = data.get("listen", {}) or {}
    if not isinstance(listen, dict):
        raise ConfigError("listen", listen, "is not a mapping")
    _check_keys("listen", listen, {"addresses", "port"})
    addrs = listen.get("addresses", ["::"])
    if not isinstance(addrs, list):
        raise ConfigError("listen.addresses", addrs, "is not a list")
    listen_addresses = tuple(_ip(f"listen.addresses[{i}]", a) for i, a in enumerate(addrs))
    neighbors_raw = data.get("neighbors", []) or []
    if not isinstance(neighbors_raw, list):
        raise ConfigError("neighbors", neighbors_raw, "is not a list")
    neighbors = tuple(_neighbor(f"neighbors[{i}]", n, defaults) for i, n in enumerate(neighbors_raw))
    seen: dict[str, int] = {}
    for i, n in enumerate(neighbors):
        key = f"{n.address}%{n.interface}" if n.address else f"%{n.interface}"
        if key in seen or n.name in seen:
            raise ConfigError(f"neighbors[{i}]", n.address or n.interface, f"duplicates neighbors[{seen.get(key, seen.get(n.name))}]")
        seen[key] = i
        seen[n.name] = i
    role = data.get("role", "host")
    if role not in ROLES:
        raise ConfigError("role", role, f"is not one of {', '.join(ROLES)}")
    fib_raw = data.get("fib", {}) or {}
    if not isinstance(fib_raw, dict):
        raise ConfigError("fib", fib_raw, "is not a mapping")
    _check_keys("fib", fib_raw, {"enabled", "table", "protocol"})
    fib = FibConfig(enabled=_bool("fib.enabled", fib_raw.get("enabled", True)),
                    table=_int("fib.table", fib_raw.get("table", 254), 1, 2**31 - 1),
                    protocol=_int("fib.protocol", fib_raw.get("protocol", 210), 5, 255))
    gr = data.get("graceful-restart", {}) or {}
    if not isinstance(gr, dict):
        raise ConfigError("graceful-restart", gr, "is not a mapping")
    _check_keys("graceful-restart", gr, {"restart-time", "convergence-timeout"})
    networks = data.get("networks", []) or []
    if not isinstance(networks, list):
        raise ConfigError("networks", networks, "is not a list of prefixes or route objects")
    nets = []
    for i, n in enumerate(networks):
        spec = {"prefix": n} if isinstance(n, str) else n
        if not isinstance(spec, dict):
            raise ConfigError(f"networks[{i}]", n, "is not a prefix or a route object")
        from .origination import RouteSpecError, parse_route

        try:
            parse_route(spec, f"networks[{i}]")
        except RouteSpecError as e:
            raise ConfigError.from_line(str(e)) from None
        nets.append(spec)
    policies = None
    if "policies" in data or "prefix-lists" in data:
        from .policy import parse_policy_config

        policies = parse_policy_config({k: data[k] for k in ("prefix-lists", "policies") if k in data})
    for i, n in enumerate(neighbors):
        for attr in ("import_policy", "export_policy"):
            name = getattr(n, attr)
            if name is not None and (policies is None or name not in policies.policies):
                raise ConfigError(f"neighbors[{i}].{attr.replace('_', '-')}", name, "is not a policy defined under policies")
    cluster_id = _ipv4("cluster-id", data["cluster-id"]) if "cluster-id" in data else None
    tenancy = state_file = None
    if "tenancy" in data:
        tn = data["tenancy"]
        if not isinstance(tn, dict):
            raise ConfigError("tenancy", tn, "is not a mapping")
        _check_keys("tenancy", tn, {"fabric-asn", "locator", "state-file", "table-range"})
        for req in ("fabric-asn", "locator"):
            if req not in tn:
                raise ConfigError(f"tenancy.{req}", None, "is required")
        from l3fab.tenancy.node import DEFAULT_TABLE_RANGE, NodeSettings

        tr = tn.get("table-range", list(DEFAULT_TABLE_RANGE))
        if not isinstance(tr, list) or len(tr) != 2:
            raise ConfigError("tenancy.table-range", tr, "is not [first, last]")
        tenancy = NodeSettings(_ipv4("router-id", data["router-id"]), _asn("tenancy.fabric-asn", tn["fabric-asn"]),
                               _str("tenancy.locator", tn["locator"]),
                               (_int("tenancy.table-range[0]", tr[0], 1, 2**31 - 1),
                                _int("tenancy.table-range[1]", tr[1], 1, 2**31 - 1)))
        state_file = _str("tenancy.state-file", tn.get("state-file", "/var/lib/l3fab/intent.json"))
    dataplane = _dataplane(data.get("dataplane", {}), fib.enabled, tenancy)
    return NodeConfig(
        dataplane=dataplane,
        tenancy=tenancy,
        tenancy_state_file=state_file,
        role=role,
        cluster_id=cluster_id,
        maximum_paths=_int("maximum-paths", data.get("maximum-paths", 64), 1, 256),
        multipath_relax=_bool("multipath-relax", data.get("multipath-relax", False)),
        always_compare_med=_bool("always-compare-med", data.get("always-compare-med", False)),
        mrai=_number("mrai", data.get("mrai", 0), 0, 600),
        networks=tuple(nets),
        fib=fib,
        restart_time=_int("graceful-restart.restart-time", gr.get("restart-time", 120), 0, 4095),
        convergence_timeout=_number("graceful-restart.convergence-timeout", gr.get("convergence-timeout", 30), 0, 3600),
        policies=policies,
        router_id=_ipv4("router-id", data["router-id"]),
        asn=_asn("asn", data["asn"]),
        neighbors=neighbors,
        listen_addresses=listen_addresses,
        listen_port=_int("listen.port", listen.get("port", 179), 0, 65535),
        api_socket=_str("api-socket", data.get("api-socket", DEFAULT_API_SOCKET)),
        hostname=_str("hostname", data.get("hostname", "")),
        source=source,
    )


def _dataplane(raw: Any, fib_enabled: bool, tenancy) -> object:
    """The ``dataplane:`` section; it only means something next to ``tenancy:``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("dataplane", raw, "is not a mapping")
    _check_keys("dataplane", raw, {"enabled", "tunnel-source", "underlay-prefixes", "endpoint-mtu", "nftables",
                                   "rate-limits", "reconcile-interval"})
    if raw and tenancy is None:
        raise ConfigError("dataplane", "...", "needs a tenancy section (the dataplane serves tenant endpoints)")
    from l3fab.dataplane.intent import DataplaneSettings

    src = raw.get("tunnel-source")
    if src is not None:
        try:
            addr = ipaddress.IPv6Address(str(src))
        except ValueError:
            raise ConfigError("dataplane.tunnel-source", src, "is not an IPv6 address") from None
        if tenancy is not None and addr not in tenancy.locator_network:
            raise ConfigError("dataplane.tunnel-source", src, f"is not inside the locator {tenancy.locator}")
        src = str(addr)
    prefixes = raw.get("underlay-prefixes", []) or []
    if not isinstance(prefixes, list):
        raise ConfigError("dataplane.underlay-prefixes", prefixes, "is not a list of IPv6 prefixes")
    norm = []
    for i, pfx in enumerate(prefixes):
        try:
            norm.append(str(ipaddress.IPv6Network(str(pfx), strict=True)))
        except ValueError:
            raise ConfigError(f"dataplane.underlay-prefixes[{i}]", pfx, "is not an IPv6 prefix") from None
    if tenancy is not None and norm and tenancy.locator not in norm:
        norm.insert(0, tenancy.locator)
    mtu = raw.get("endpoint-mtu")
    return DataplaneSettings(
        enabled=_bool("dataplane.enabled", raw.get("enabled", fib_enabled)),
        tunnel_source=src,
        underlay_prefixes=tuple(norm),
        endpoint_mtu=None if mtu is None else _int("dataplane.endpoint-mtu", mtu, 1280, 65535),
        nftables=_bool("dataplane.nftables", raw.get("nftables", True)),
        rate_limits=_bool("dataplane.rate-limits", raw.get("rate-limits", True)),
        reconcile_interval=_number("dataplane.reconcile-interval", raw.get("reconcile-interval", 30), 1, 3600),
    )


def load_config(path: str | Path) -> NodeConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError("config", str(p), f"cannot be read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError("config", str(p), f"is not valid YAML ({where}: {getattr(e, 'problem', e)})") from None
    return parse_config(data, str(p))
