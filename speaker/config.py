"""Node configuration: YAML in, validated frozen dataclasses out.

Every problem is reported as one :class:`ConfigError` line naming the field and
the value at fault, e.g. ``neighbors[1].remote-as: 'foo' is not an ASN, 'external' or 'internal'``.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .fields import (asn as _asn, boolean as _bool, check_keys as _check_keys, families as _families,
                     integer as _int, ifname as _ifname, ip_address as _ip, ipv4_address as _ipv4, number as _number,
                     remote_as as _remote_as, string as _str)
from .origination import LocalRoute, RouteSpecError, parse_route
from .policy import PolicyConfig, parse_policy_config
from .table.manager import MaxPrefix
from .wire.constants import IPV4_UNICAST, IPV6_UNICAST, Family

DEFAULT_API_SOCKET = "/run/l3fab/l3fab.sock"
HOST_MAX_PREFIX = 25_000  # max-prefix of a neighbour with host-locator when none is configured


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
    min_hold_time: int | None = None  # None: the session's default (3 s); 0 accepts a peer's hold time 0
    send_hold_time: float | None = None  # None: RFC 9687's max(8 min, 2 x hold time)
    max_send_buffer: int | None = None  # octets queued for the peer before the session closes; None: 32 MiB

    @property
    def unnumbered(self) -> bool:
        return self.address is None


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
    networks: tuple[LocalRoute, ...] = ()
    fib: FibConfig = FibConfig()
    restart_time: int = 120
    convergence_timeout: float = 30.0
    policies: PolicyConfig | None = None  # when the config has policies
    source: str = field(default="", compare=False)

    def neighbor(self, key: str) -> NeighborConfig | None:
        for n in self.neighbors:
            if key in (n.name, n.address, n.interface, n.description):
                return n
        return None


_NEIGHBOR_KEYS = {"name", "address", "interface", "remote-as", "families", "passive", "hold-time",
                  "connect-retry", "port", "password", "ttl-security", "local-address", "description",
                  "addpath-receive", "route-reflector-client", "allowas-in", "import-policy", "export-policy",
                  "max-prefix", "next-hop-self", "host-locator", "keep-pre-policy", "graceful-restart",
                  "min-hold-time", "send-hold-time", "max-send-buffer"}
_NODE_KEYS = {"router-id", "asn", "neighbors", "listen", "api-socket", "hostname", "role", "cluster-id",
              "maximum-paths", "multipath-relax", "always-compare-med", "mrai", "networks", "fib",
              "graceful-restart", "prefix-lists", "policies"}
ROLES = ("host", "leaf", "spine", "route-reflector")


def _neighbor(path: str, d: Any, defaults: dict) -> NeighborConfig:
    if not isinstance(d, dict):
        raise ConfigError(path, "...", "is not a mapping")
    _check_keys(path, d, _NEIGHBOR_KEYS)
    address = _ip(f"{path}.address", d["address"]) if "address" in d else None
    interface = _ifname(f"{path}.interface", d["interface"]) if "interface" in d else None
    if address is None and interface is None:
        raise ConfigError(path, None, "", message=f"{path}: needs an address or an interface (unnumbered)")
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
    name = _text(f"{path}.name", d["name"], 64) if "name" in d else (address or interface)
    assert name is not None  # an address or an interface is set (checked above)
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
        if max_prefix is None:
            # a leaf's host-facing session: a host announces its locator and two routes per
            # endpoint; a runaway or hostile host must not fill the leaf (docs/security.md)
            max_prefix = MaxPrefix(limit=HOST_MAX_PREFIX)
        try:
            host_locator = str(ipaddress.ip_network(str(d["host-locator"]), strict=True))
        except ValueError:
            raise ConfigError(f"{path}.host-locator", d["host-locator"],
                              "is not a prefix (the host's locator, e.g. 2001:db8:0:11::/64)") from None
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
        description=_text(f"{path}.description", d.get("description", ""), 200, empty=True),
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
        min_hold_time=_min_hold(f"{path}.min-hold-time", d["min-hold-time"]) if "min-hold-time" in d else None,
        send_hold_time=(_number(f"{path}.send-hold-time", d["send-hold-time"], max(hold, 1), 86400)
                        if "send-hold-time" in d else None),
        max_send_buffer=(_int(f"{path}.max-send-buffer", d["max-send-buffer"], 65536, 2**31)
                         if "max-send-buffer" in d else None),
    )


def _min_hold(path: str, v: Any) -> int:
    """The smallest hold time a peer may ask for: 0 (a peer may switch keepalives off) or 3-65535."""
    n = _int(path, v, 0, 65535)
    if n in (1, 2):
        raise ConfigError(path, v, "must be 0 or at least 3 seconds")
    return n


def _text(path: str, v: Any, longest: int, empty: bool = False) -> str:
    """A name or description: printable text only (a newline would forge log lines and
    break every tool that reads names back), at most ``longest`` characters."""
    text = _str(path, v)
    if (not text and not empty) or len(text) > longest or not text.isprintable():
        raise ConfigError(path, v, f"is not printable text of 1-{longest} characters")
    return text


def parse_config(data: Any, source: str = "", sections: frozenset[str] = frozenset()) -> NodeConfig:
    """Validate a parsed YAML document: the speaker's part of it.  ``sections`` are the
    top-level keys other layers parse (``tenancy``, ``dataplane``): allowed, not read."""
    if not isinstance(data, dict):
        raise ConfigError("(top level)", data, "is not a mapping")
    _check_keys("", data, _NODE_KEYS | {"defaults"} | set(sections))
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
            raise ConfigError(f"neighbors[{i}]", n.address or n.interface,
                              f"duplicates neighbors[{seen.get(key, seen.get(n.name))}]")
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
        try:
            nets.append(parse_route(spec, f"networks[{i}]"))
        except RouteSpecError as e:
            raise ConfigError.from_line(str(e)) from None
    policies = None
    if "policies" in data or "prefix-lists" in data:
        policies = parse_policy_config({k: data[k] for k in ("prefix-lists", "policies") if k in data})
    for i, n in enumerate(neighbors):
        for attr in ("import_policy", "export_policy"):
            name = getattr(n, attr)
            if name is not None and (policies is None or name not in policies.policies):
                raise ConfigError(f"neighbors[{i}].{attr.replace('_', '-')}", name,
                                  "is not a policy defined under policies")
    cluster_id = _ipv4("cluster-id", data["cluster-id"]) if "cluster-id" in data else None
    return NodeConfig(
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


def config_warnings(cfg: NodeConfig) -> list[str]:
    """What ``config check`` warns about: risky settings that are not errors."""
    out = []
    for i, n in enumerate(cfg.neighbors):
        if n.max_prefix is None:
            out.append(f"neighbors[{i}] ({n.name}): no max-prefix: a neighbour can fill this node's memory")
        if n.hold_time == 0:
            out.append(f"neighbors[{i}] ({n.name}): hold-time 0: a dead neighbour is never noticed")
    return out


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML document of a config file; errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError("config", str(p), f"cannot be read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError("config", str(p), f"is not UTF-8 text (byte {e.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError("config", str(p), f"is not valid YAML ({where}: {getattr(e, 'problem', e)})") from None
    return data


def load_config(path: str | Path, sections: frozenset[str] = frozenset()) -> NodeConfig:
    """The speaker's part of a node config file."""
    return parse_config(read_yaml(path), str(path), sections)
