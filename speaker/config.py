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

    def __init__(self, path: str, value: Any, problem: str) -> None:
        self.path = path
        self.value = value
        super().__init__(f"{path}: {value!r} {problem}")


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

    @property
    def unnumbered(self) -> bool:
        return self.address is None


@dataclass(frozen=True)
class NodeConfig:
    router_id: str
    asn: int
    neighbors: tuple[NeighborConfig, ...] = ()
    listen_addresses: tuple[str, ...] = ("::",)
    listen_port: int = 179
    api_socket: str = DEFAULT_API_SOCKET
    hostname: str = ""
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
                  "addpath-receive"}
_NODE_KEYS = {"router-id", "asn", "neighbors", "listen", "api-socket", "hostname"}


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
    return NodeConfig(
        router_id=_ipv4("router-id", data["router-id"]),
        asn=_asn("asn", data["asn"]),
        neighbors=neighbors,
        listen_addresses=listen_addresses,
        listen_port=_int("listen.port", listen.get("port", 179), 0, 65535),
        api_socket=_str("api-socket", data.get("api-socket", DEFAULT_API_SOCKET)),
        hostname=_str("hostname", data.get("hostname", "")),
        source=source,
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
