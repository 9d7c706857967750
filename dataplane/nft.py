"""Anti-spoofing and isolation for local endpoints: the nftables table ``inet l3fab``.

An endpoint (a VM's TAP, a DPU's VF, a veth) is not trusted.  From its interface
the host accepts only:

- packets whose source is the endpoint's own IPv4 /32 or IPv6 /128;
- IPv6 neighbour discovery and MLD (RFC 4861, RFC 3810) from ``::`` or
  ``fe80::/10`` to link-local or multicast destinations, so that the endpoint can
  resolve its gateway ``fe80::1`` (ARP is not seen by the ``inet`` family and
  keeps working untouched).

and it drops, each with its own counter per endpoint:

- ``spoofed``: any other source;
- ``underlay``: destinations in the underlay/SID space (``underlay_prefixes`` and
  the locator);
- ``host``: anything delivered to the host itself (input hook), except ND/MLD.

``accepted`` counts what the host forwarded for the endpoint (forward hook).

Endpoint interfaces are matched by an explicit set of names, never by a name
prefix: a wildcard such as ``vm-*`` silently misses a ``tap-*`` device.
Prerouting runs at priority raw, so dropped packets never reach conntrack.

The table carries a comment with a hash of its content.  :func:`apply` replaces
the table in one ``nft -f -`` transaction (there is never a moment without the
filter) and does nothing when the installed hash is already the wanted one, so a
restart neither flaps the filter nor resets its counters.  When the content does
change, the counter values of endpoints that stay are carried into the new table
(packets counted in the few milliseconds between reading and replacing are lost).
With no endpoints the table is removed: there is nothing to protect.

Every command can run in a named network namespace (``ip netns exec <netns>``).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from .model import NFT_TABLE, DataplaneSpec, PortSpec

FAMILY = "inet"
COUNTER_KINDS = ("accepted", "spoofed", "underlay", "host")
HASH_PREFIX = "l3fab sha256:"

# ICMPv6 an endpoint needs to find its gateway: RS, NS, NA (RFC 4861), MLDv1 report
# and done (RFC 2710), MLDv2 report (RFC 3810).  Router advertisements, redirects
# and MLD queries are left out on purpose: the host is the router, not the endpoint.
ND_MLD_TYPES = ("nd-router-solicit", "nd-neighbor-solicit", "nd-neighbor-advert",
                "mld-listener-report", "mld-listener-done", "mld2-listener-report")

_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")  # IFNAMSIZ - 1; no '*': never a wildcard
# Create (a no-op if present), then delete: never an error, also when the table vanished
# meanwhile.  Followed by the new table in the same file, it is one transaction: the
# old filter stays in force until the new one is committed.
_DELETE = f"table {FAMILY} {NFT_TABLE}\ndelete table {FAMILY} {NFT_TABLE}\n"
_COMMENT = re.compile(r"^\s*table\s+inet\s+" + re.escape(NFT_TABLE) + r"\s*\{\s*\n\s*comment\s+\"([^\"]*)\"",
                      re.MULTILINE)

Counters = dict[str, dict[str, dict[str, int]]]
"""endpoint name -> counter kind -> {"packets": n, "bytes": n}"""


class NftError(RuntimeError):
    """An ``nft`` command failed; one line with the command and nft's first error line."""


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` did: ``action`` is ``unchanged``, ``replaced``, ``removed`` or
    ``absent`` (no endpoints and no table); ``digest`` is the wanted content hash."""

    action: str
    digest: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in ("replaced", "removed")


# ---------------------------------------------------------------- rendering (pure)


def counter_name(endpoint: str, kind: str) -> str:
    """``spoofed.web-1``.  nft 1.0.6 takes object names only unquoted, starting with a
    letter: the kind comes first so that any endpoint name (which may start with a
    digit or be a keyword such as ``counter``) gives a valid name."""
    return f"{kind}.{endpoint}"


def digest(spec: DataplaneSpec) -> str:
    """The content hash of :func:`render`'s table, counter values left out."""
    return hashlib.sha256(_body(spec, {}).encode()).hexdigest()


def render(spec: DataplaneSpec, counters: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
           ) -> str:
    """The whole ``table inet l3fab`` as nft text.  ``counters`` (as returned by
    :func:`counters`) gives the counters' starting values; they do not change the hash."""
    head = f"table {FAMILY} {NFT_TABLE} {{\n\tcomment \"{HASH_PREFIX}{digest(spec)}\"\n"
    return head + _body(spec, counters or {})


def _body(spec: DataplaneSpec, start: Mapping[str, Mapping[str, Mapping[str, int]]]) -> str:
    ports = sorted(_checked_ports(spec.ports), key=lambda p: p.name)
    underlay = _underlay(spec)
    out: list[str] = []
    for p in ports:
        for kind in COUNTER_KINDS:
            value = start.get(p.name, {}).get(kind, {})
            packets, nbytes = int(value.get("packets", 0)), int(value.get("bytes", 0))
            out.append(f"\tcounter {counter_name(p.name, kind)} {{ packets {packets} bytes {nbytes} }}")
    out.append(_set("endpoints", "ifname", [_q(p.ifname) for p in ports]))
    out.append(_set("sources4", "ifname . ipv4_addr", [f"{_q(p.ifname)} . {p.ipv4}" for p in ports if p.ipv4]))
    out.append(_set("sources6", "ifname . ipv6_addr", [f"{_q(p.ifname)} . {p.ipv6}" for p in ports if p.ipv6]))
    out.append(_set("underlay4", "ipv4_addr", underlay[4], interval=True))
    out.append(_set("underlay6", "ipv6_addr", underlay[6], interval=True))
    for kind in COUNTER_KINDS:
        out.append(_set(kind, "ifname : counter",
                        [f"{_q(p.ifname)} : {_q(counter_name(p.name, kind))}" for p in ports], map_=True))
    nd_mld = "icmpv6 type { " + ", ".join(ND_MLD_TYPES) + " }"
    out.append(_chain("prerouting", "prerouting", "raw", [
        "iifname != @endpoints accept",
        f"ip6 saddr {{ ::, fe80::/10 }} ip6 daddr {{ fe80::/10, ff00::/8 }} {nd_mld} accept",
        "iifname . ip saddr != @sources4 counter name iifname map @spoofed drop",
        "iifname . ip6 saddr != @sources6 counter name iifname map @spoofed drop",
        "ip daddr @underlay4 counter name iifname map @underlay drop",
        "ip6 daddr @underlay6 counter name iifname map @underlay drop",
    ]))
    out.append(_chain("input", "input", "filter", [
        "iifname != @endpoints accept",
        f"{nd_mld} accept",
        "counter name iifname map @host drop",
    ]))
    out.append(_chain("forward", "forward", "filter", [
        "iifname @endpoints counter name iifname map @accepted",
    ]))
    return "\n".join(out) + "\n}\n"


def _q(text: str) -> str:
    return f'"{text}"'


def _set(name: str, type_: str, elements: list[str], *, interval: bool = False, map_: bool = False) -> str:
    lines = [f"\t{'map' if map_ else 'set'} {name} {{", f"\t\ttype {type_}"]
    if interval:
        lines.append("\t\tflags interval")
    if elements:
        lines.append("\t\telements = { " + ",\n\t\t\t".join(elements) + " }")
    return "\n".join(lines) + "\n\t}"


def _chain(name: str, hook: str, priority: str, rules: list[str]) -> str:
    head = [f"\tchain {name} {{", f"\t\ttype filter hook {hook} priority {priority}; policy accept;"]
    return "\n".join(head + [f"\t\t{r}" for r in rules]) + "\n\t}"


def _checked_ports(ports: Iterable[PortSpec]) -> list[PortSpec]:
    """The ports with normalized addresses; a bad one raises a one-line ValueError."""
    seen_names: set[str] = set()
    seen_ifnames: dict[str, str] = {}
    out = []
    for p in ports:
        if not isinstance(p.name, str) or not _ENDPOINT_NAME.match(p.name):
            raise ValueError(f"ports.name: {p.name!r} is not an endpoint name "
                             "(letters, digits, '_', '.', '-'; up to 63, first a letter or digit)")
        where = f"ports[{p.name}]"
        if p.name in seen_names:
            raise ValueError(f"{where}.name: {p.name!r} appears twice")
        seen_names.add(p.name)
        if not isinstance(p.ifname, str) or not _IFNAME.match(p.ifname):
            raise ValueError(f"{where}.ifname: {p.ifname!r} is not an interface name (1-15 characters, "
                             "letters, digits, '_', '.', ':', '@', '-')")
        if p.ifname in seen_ifnames:
            raise ValueError(f"{where}.ifname: {p.ifname!r} is already endpoint {seen_ifnames[p.ifname]!r}'s")
        seen_ifnames[p.ifname] = p.name
        out.append(replace(p, ipv4=_host(f"{where}.ipv4", p.ipv4, 4), ipv6=_host(f"{where}.ipv6", p.ipv6, 6)))
    return out


def _host(where: str, value: str | None, version: int) -> str | None:
    """``'10.0.0.5'`` or ``'10.0.0.5/32'`` -> ``'10.0.0.5'``."""
    if value is None:
        return None
    width = 32 if version == 4 else 128
    try:
        iface = ipaddress.ip_interface(str(value).strip())
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an IPv{version} address") from None
    if iface.version != version:
        raise ValueError(f"{where}: {value!r} is not an IPv{version} address")
    if iface.network.prefixlen != width:
        raise ValueError(f"{where}: {value!r} is not a host address (/{width})")
    return str(iface.ip)


def _underlay(spec: DataplaneSpec) -> dict[int, list[str]]:
    """``underlay_prefixes`` and the locator by family, overlaps merged (nft refuses
    overlapping intervals in a set)."""
    nets: dict[int, list] = {4: [], 6: []}
    for where, value in [("locator", spec.locator)] + [
            (f"underlay_prefixes[{i}]", v) for i, v in enumerate(spec.underlay_prefixes)]:
        try:
            net = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an IP prefix") from None
        nets[net.version].append(net)
    return {v: [str(n) for n in ipaddress.collapse_addresses(ns)] for v, ns in nets.items()}


# ---------------------------------------------------------------- reading nft output (pure)


def installed_digest(listing: str) -> str | None:
    """The content hash in ``nft list table inet l3fab`` output, or None."""
    m = _COMMENT.search(listing)
    if not m or not m.group(1).startswith(HASH_PREFIX):
        return None
    return m.group(1)[len(HASH_PREFIX):]


def parse_counters(listing_json: str) -> Counters:
    """``nft -j list counters table inet l3fab`` output -> per endpoint, per kind."""
    out: Counters = {}
    for item in json.loads(listing_json).get("nftables", []):
        c = item.get("counter")
        if not c or c.get("family") != FAMILY or c.get("table") != NFT_TABLE:
            continue
        kind, _, endpoint = c.get("name", "").partition(".")
        if kind in COUNTER_KINDS and endpoint:
            out.setdefault(endpoint, {})[kind] = {"packets": int(c.get("packets", 0)),
                                                  "bytes": int(c.get("bytes", 0))}
    return out


def _has_table(listing_json: str) -> bool:
    return any(t.get("table", {}).get("family") == FAMILY and t["table"].get("name") == NFT_TABLE
               for t in json.loads(listing_json).get("nftables", []))


# ---------------------------------------------------------------- talking to the kernel


def _run(args: list[str], *, nft: str, netns: str | None, input: str | None = None) -> str:
    """``nft args`` (inside ``netns`` if given); stdout, or :class:`NftError`."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    where = f" (netns {netns})" if netns else ""
    command = f"nft {' '.join(args)}{where}"
    try:
        proc = subprocess.run([*prefix, nft, *args], input=input, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NftError(f"{command}: {exc}") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise NftError(f"{command}: {lines[0] if lines else f'exited with {proc.returncode}'}")
    return proc.stdout


def is_installed(nft: str = "nft", netns: str | None = None) -> bool:
    return _has_table(_run(["-j", "list", "tables"], nft=nft, netns=netns))


def counters(nft: str = "nft", netns: str | None = None) -> Counters:
    """Per endpoint name: ``{"spoofed": {"packets": n, "bytes": n}, ...}``; ``{}`` without the table."""
    if not is_installed(nft=nft, netns=netns):
        return {}
    return _read_counters(nft, netns)


def _read_counters(nft: str, netns: str | None) -> Counters:
    return parse_counters(_run(["-j", "list", "counters", "table", FAMILY, NFT_TABLE], nft=nft, netns=netns))


def apply(spec: DataplaneSpec, nft: str = "nft", netns: str | None = None) -> ApplyResult:
    """Make the kernel's ``inet l3fab`` equal to :func:`render` (see the module docstring)."""
    wanted = digest(spec) if spec.ports else None  # a bad spec fails before nft runs
    present = is_installed(nft=nft, netns=netns)
    if wanted is None:
        if not present:
            return ApplyResult("absent")
        _run(["-f", "-"], nft=nft, netns=netns, input=_DELETE)
        return ApplyResult("removed")
    start: Counters = {}
    if present:
        listing = _run(["-t", "list", "table", FAMILY, NFT_TABLE], nft=nft, netns=netns)
        if installed_digest(listing) == wanted:
            return ApplyResult("unchanged", wanted)
        start = _read_counters(nft, netns)
    _run(["-f", "-"], nft=nft, netns=netns, input=_DELETE + render(spec, start))
    return ApplyResult("replaced", wanted)


def remove(nft: str = "nft", netns: str | None = None) -> bool:
    """Delete ``inet l3fab`` if present (full stop, tests); True if it was there."""
    present = is_installed(nft=nft, netns=netns)
    if present:
        _run(["-f", "-"], nft=nft, netns=netns, input=_DELETE)
    return present
