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

**Interfaces l3fab does not know** (a removed endpoint's link, a VM's TAP never
added, anything that is neither an endpoint nor trusted) get a :class:`Guard`: they
may not reach the protected destinations - the underlay prefixes and the locator
(every SID), the host's own addresses, the endpoint gateway 169.254.0.1 and the
End.DX4 handles (routed to endpoints in the main table) - dropped in prerouting and
counted in the one counter ``strangers``.  Trusted interfaces (the uplinks and
``lo``; :class:`dataplane.linux.LinuxDataplane` also counts as trusted every
interface that carries a global address, the host's own networks) are not touched.
Without a guard the table is what it was before (the tests of the endpoint rules
use that); with one, the table stays even when there are no endpoints: a removed
last endpoint is a stranger too.

Endpoint interfaces are matched by an explicit set of names, never by a name
prefix: a wildcard such as ``vm-*`` silently misses a ``tap-*`` device.
Prerouting runs at priority raw, so dropped packets never reach conntrack.

The table carries a comment with a hash of its content.  :func:`apply` replaces
the table in one ``nft -f -`` transaction (there is never a moment without the
filter) and does nothing when the installed hash is already the wanted one, so a
restart neither flaps the filter nor resets its counters.  When the content does
change, the counter values of endpoints that stay are carried into the new table
(packets counted in the few milliseconds between reading and replacing are lost).
With no endpoints and no guard the table is removed: there is nothing to protect.

Names and interface names are checked again here (matched whole, no control
characters: an nft file is line-based, and one bad element would make every update
fail), and nft's own error line is shown escaped.

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

from .model import GATEWAY4, NFT_TABLE, DataplaneSpec, PortSpec

FAMILY = "inet"
COUNTER_KINDS = ("accepted", "spoofed", "underlay", "host")
STRANGERS = "strangers"  # the counter of packets from unknown interfaces to protected destinations
STRANGERS_KEY = "*"  # its key among the per-endpoint counters: never an endpoint name
HASH_PREFIX = "l3fab sha256:"

# ICMPv6 an endpoint needs to find its gateway: RS, NS, NA (RFC 4861), MLDv1 report
# and done (RFC 2710), MLDv2 report (RFC 3810).  Router advertisements, redirects
# and MLD queries are left out on purpose: the host is the router, not the endpoint.
ND_MLD_TYPES = ("nd-router-solicit", "nd-neighbor-solicit", "nd-neighbor-advert",
                "mld-listener-report", "mld-listener-done", "mld2-listener-report")

# Used with fullmatch ("$" would accept a final newline: "web2\n" broke every update).
_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")  # IFNAMSIZ - 1; no '*': never a wildcard
_SHOWN = 300  # characters of nft's error line kept in a message
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
class Guard:
    """What interfaces l3fab does not know may not reach (see the module documentation).

    ``trusted``: interface names exempt (the uplinks, ``lo``); ``host_addresses``: the
    host's own addresses, protected besides the underlay prefixes, the locator, the
    gateway and the End.DX4 handles of the spec."""

    trusted: tuple[str, ...] = ("lo",)
    host_addresses: tuple[str, ...] = ()


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


def digest(spec: DataplaneSpec, guard: Guard | None = None) -> str:
    """The content hash of :func:`render`'s table, counter values left out."""
    return hashlib.sha256(_body(spec, {}, guard).encode()).hexdigest()


def render(spec: DataplaneSpec, counters: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
           guard: Guard | None = None) -> str:
    """The whole ``table inet l3fab`` as nft text.  ``counters`` (as returned by
    :func:`counters` with ``strangers``) gives the counters' starting values; they do
    not change the hash."""
    head = f"table {FAMILY} {NFT_TABLE} {{\n\tcomment \"{HASH_PREFIX}{digest(spec, guard)}\"\n"
    return head + _body(spec, counters or {}, guard)


def _counter(name: str, value: Mapping[str, int]) -> str:
    packets, nbytes = int(value.get("packets", 0)), int(value.get("bytes", 0))
    return f"\tcounter {name} {{ packets {packets} bytes {nbytes} }}"


def _body(spec: DataplaneSpec, start: Mapping[str, Mapping[str, Mapping[str, int]]],
          guard: Guard | None = None) -> str:
    ports = sorted(_checked_ports(spec.ports), key=lambda p: p.name)
    underlay = _underlay(spec)
    out: list[str] = []
    for p in ports:
        for kind in COUNTER_KINDS:
            out.append(_counter(counter_name(p.name, kind), start.get(p.name, {}).get(kind, {})))
    stranger_rules: list[str] = []
    if guard is not None:
        trusted, protected = _checked_guard(guard, ports, underlay)
        out.append(_counter(STRANGERS, start.get(STRANGERS_KEY, {}).get(STRANGERS, {})))
        out.append(_set("trusted", "ifname", [_q(name) for name in trusted]))
        out.append(_set("protected4", "ipv4_addr", protected[4], interval=True))
        out.append(_set("protected6", "ipv6_addr", protected[6], interval=True))
        unknown = "iifname != @endpoints iifname != @trusted"
        stranger_rules = [f"{unknown} ip daddr @protected4 counter name {STRANGERS} drop",
                          f"{unknown} ip6 daddr @protected6 counter name {STRANGERS} drop"]
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
        *stranger_rules,
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


def _shown(v: object) -> str:
    text = repr(v)  # one line: repr escapes every non-printable character
    return text if len(text) <= 100 else f"{text[:100]}...({len(text) - 100} more)"


def _matches(pattern: re.Pattern[str], v: object) -> bool:
    """``v`` is a string without control characters that ``pattern`` matches whole."""
    return isinstance(v, str) and v.isprintable() and pattern.fullmatch(v) is not None


def valid_ifname(v: object) -> bool:
    """``v`` is an interface name nft's rules take here (no wildcard, no control character)."""
    return _matches(_IFNAME, v)


def _checked_ifname(where: str, v: object) -> str:
    if not _matches(_IFNAME, v):
        raise ValueError(f"{where}: {_shown(v)} is not an interface name (1-15 characters, "
                         "letters, digits, '_', '.', ':', '@', '-')")
    assert isinstance(v, str)
    return v


def _checked_ports(ports: Iterable[PortSpec]) -> list[PortSpec]:
    """The ports with normalized addresses; a bad one raises a one-line ValueError."""
    seen_names: set[str] = set()
    seen_ifnames: dict[str, str] = {}
    out = []
    for p in ports:
        if not _matches(_ENDPOINT_NAME, p.name):
            raise ValueError(f"ports.name: {_shown(p.name)} is not an endpoint name "
                             "(letters, digits, '_', '.', '-'; up to 63, first a letter or digit)")
        where = f"ports[{p.name}]"
        if p.name in seen_names:
            raise ValueError(f"{where}.name: {p.name!r} appears twice")
        seen_names.add(p.name)
        _checked_ifname(f"{where}.ifname", p.ifname)
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
        raise ValueError(f"{where}: {_shown(value)} is not an IPv{version} address") from None
    if iface.version != version:
        raise ValueError(f"{where}: {_shown(value)} is not an IPv{version} address")
    if iface.network.prefixlen != width:
        raise ValueError(f"{where}: {_shown(value)} is not a host address (/{width})")
    return str(iface.ip)


def _checked_guard(guard: Guard, ports: list[PortSpec], underlay: dict[int, list[str]],
                   ) -> tuple[list[str], dict[int, list[str]]]:
    """(trusted interface names, protected prefixes by family, overlaps merged)."""
    trusted = sorted({_checked_ifname(f"guard.trusted[{i}]", name) for i, name in enumerate(guard.trusted)})
    nets: dict[int, list] = {v: [ipaddress.ip_network(n) for n in underlay[v]] for v in (4, 6)}
    named = [("gateway", GATEWAY4)] + [(f"ports[{p.name}].handle4", p.handle4) for p in ports if p.handle4]
    named += [(f"guard.host_addresses[{i}]", v) for i, v in enumerate(guard.host_addresses)]
    for where, value in named:
        try:
            addr = ipaddress.ip_address(str(value).split("%")[0])
        except ValueError:
            raise ValueError(f"{where}: {_shown(value)} is not an IP address") from None
        nets[addr.version].append(ipaddress.ip_network(addr))
    return trusted, {v: [str(n) for n in ipaddress.collapse_addresses(ns)] for v, ns in nets.items()}


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


def parse_counters(listing_json: str, strangers: bool = False) -> Counters:
    """``nft -j list counters table inet l3fab`` output -> per endpoint, per kind
    (with ``strangers``, also ``{STRANGERS_KEY: {STRANGERS: {...}}}`` when present)."""
    out: Counters = {}
    for item in json.loads(listing_json).get("nftables", []):
        c = item.get("counter")
        if not c or c.get("family") != FAMILY or c.get("table") != NFT_TABLE:
            continue
        if strangers and c.get("name") == STRANGERS:
            out[STRANGERS_KEY] = {STRANGERS: {"packets": int(c.get("packets", 0)),
                                              "bytes": int(c.get("bytes", 0))}}
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
        raise NftError(f"{command}: {_escaped(lines[0]) if lines else f'exited with {proc.returncode}'}")
    return proc.stdout


def _escaped(line: str) -> str:
    """nft's error line as one printable line (it may quote the offending input)."""
    if len(line) > _SHOWN:
        line = f"{line[:_SHOWN]}...({len(line) - _SHOWN} more)"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def is_installed(nft: str = "nft", netns: str | None = None) -> bool:
    return _has_table(_run(["-j", "list", "tables"], nft=nft, netns=netns))


def counters(nft: str = "nft", netns: str | None = None, strangers: bool = False) -> Counters:
    """Per endpoint name: ``{"spoofed": {"packets": n, "bytes": n}, ...}``; ``{}`` without the table.
    With ``strangers``, also the stranger counter under :data:`STRANGERS_KEY`."""
    if not is_installed(nft=nft, netns=netns):
        return {}
    return _read_counters(nft, netns, strangers)


def strangers(nft: str = "nft", netns: str | None = None) -> dict[str, int]:
    """``{"packets": n, "bytes": n}`` dropped from interfaces l3fab does not know (zeros
    without the table or without a guard)."""
    if not is_installed(nft=nft, netns=netns):
        return {"packets": 0, "bytes": 0}
    found = _read_counters(nft, netns, strangers=True).get(STRANGERS_KEY, {}).get(STRANGERS)
    return dict(found) if found else {"packets": 0, "bytes": 0}


def _read_counters(nft: str, netns: str | None, strangers: bool = False) -> Counters:
    return parse_counters(_run(["-j", "list", "counters", "table", FAMILY, NFT_TABLE], nft=nft, netns=netns),
                          strangers)


def apply(spec: DataplaneSpec, nft: str = "nft", netns: str | None = None,
          guard: Guard | None = None) -> ApplyResult:
    """Make the kernel's ``inet l3fab`` equal to :func:`render` (see the module docstring)."""
    # a bad spec fails before nft runs
    wanted = digest(spec, guard) if spec.ports or guard is not None else None
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
        start = _read_counters(nft, netns, strangers=True)
    _run(["-f", "-"], nft=nft, netns=netns, input=_DELETE + render(spec, start, guard))
    return ApplyResult("replaced", wanted)


def remove(nft: str = "nft", netns: str | None = None) -> bool:
    """Delete ``inet l3fab`` if present (full stop, tests); True if it was there."""
    present = is_installed(nft=nft, netns=netns)
    if present:
        _run(["-f", "-"], nft=nft, netns=netns, input=_DELETE)
    return present
