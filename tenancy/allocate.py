"""Allocations derived from the intent: SIDs, kernel table ids, RDs, route targets
and the VPN label.

SIDs and table ids are handed out from a persisted counter that only moves forward,
so a freed SID or table is not given to someone else while a remote host or the
kernel may still hold state that points at it.  Only when the counter runs off the
end of its space does allocation fall back to the lowest value not in use.  Either
way a value still in use is never handed out twice.

SIDs: one per address family of an endpoint.  The kernel's seg6local actions are
per family (End.DX4 delivers IPv4, End.DX6 or End.DT6 IPv6, and End.DT46 needs a VRF
device), so a dual-stack endpoint has two SIDs: ``sid4`` and ``sid6``.
"""
from __future__ import annotations

import ipaddress

from l3fab.speaker.wire.extcommunity import ExtCommunity
from l3fab.speaker.wire.rd import RouteDistinguisher

from .errors import IntentError
from .model import State
from .node import SID_FIRST_INDEX, NodeSettings

MAX_LABEL = (1 << 20) - 1  # RFC 8277: 20-bit label field
MAX_RD_NUMBER = 0xFFFF  # RFC 4364 4.2: a type-1 RD assigns 16 bits


def sid_address(node: NodeSettings, index: int) -> str:
    """The SID with ``index`` inside the node's locator: ``2001:db8:0:1::100`` for 0x100."""
    net = node.locator_network
    return str(ipaddress.IPv6Address(int(net.network_address) + index))


def sid_index(node: NodeSettings, address: str) -> int | None:
    """The index of ``address`` inside the locator, or None if it lies outside."""
    addr = ipaddress.IPv6Address(address)
    net = node.locator_network
    return int(addr) - int(net.network_address) if addr in net else None


def sids_in_use(state: State) -> set[int]:
    used: set[int] = set()
    for a in state.endpoint_allocations.values():
        used.update(i for i in (a.sid4_index, a.sid6_index) if i is not None)
    return used


def _next_free(start: int, low: int, high: int, used: set[int], field: str, what: str) -> int:
    candidate = max(start, low)
    while candidate <= high and candidate in used:
        candidate += 1
    if candidate <= high:
        return candidate
    for candidate in range(low, high + 1):  # wrapped: lowest value not in use
        if candidate not in used:
            return candidate
    raise IntentError(field, f"{low}-{high}", f"has no free {what} left")


def allocate_sids(state: State, node: NodeSettings, count: int) -> tuple[list[int], int]:
    """``count`` fresh SID indices and the counter value after them."""
    used = sids_in_use(state)
    out: list[int] = []
    cursor = state.next_sid_index
    for _ in range(count):
        i = _next_free(cursor, SID_FIRST_INDEX, node.max_sid_index, used, "locator", "SID")
        used.add(i)
        out.append(i)
        cursor = i + 1
    return out, cursor


def allocate_table(state: State, node: NodeSettings) -> tuple[int, int]:
    """A fresh table id from the node's range and the counter value after it."""
    used = {a.table for a in state.tenant_allocations.values()}
    low, high = node.table_range
    t = _next_free(state.next_table, low, high, used, "table-range", "table id")
    return t, t + 1


def allocate_rd_number(state: State, vni: int) -> int:
    """The RD's assigned number: the VNI where it fits the 16 bits of a type-1 RD and
    is not taken; otherwise the highest free number (stored, so it stays)."""
    used = {a.rd_number for a in state.tenant_allocations.values()}
    if vni <= MAX_RD_NUMBER and vni not in used:
        return vni
    for n in range(MAX_RD_NUMBER, 0, -1):
        if n not in used:
            return n
    raise IntentError("vni", vni, "cannot get a route distinguisher: all 65535 are in use")


def route_distinguisher(node: NodeSettings, rd_number: int) -> RouteDistinguisher:
    """Type-1 RD ``<router-id>:<n>`` (RFC 4364 section 4.2)."""
    return RouteDistinguisher(1, node.router_id, rd_number)


def route_target(fabric_asn: int, vni: int) -> ExtCommunity:
    """``target:<fabric-asn>:<vni>``.

    - 2-octet ASN: type 0x00, the VNI fits the 32-bit assigned field.
    - 4-octet ASN and VNI <= 65535: type 0x02 (RFC 5668) ``target:4200000000:100``.
    - 4-octet ASN and larger VNI: the 4-octet form has only 16 bits for the VNI, so,
      as RFC 8365 section 5.1.2.1 does for EVPN, the low 16 bits of the ASN go into
      a 2-octet form: ``target:<asn & 0xffff>:<vni>``.
    """
    if fabric_asn <= 0xFFFF or vni <= 0xFFFF:
        return ExtCommunity.build("target", fabric_asn, vni)
    return ExtCommunity.build("target", fabric_asn & 0xFFFF, vni)


def vpn_label(vni: int) -> int:
    """The label field of the tenant's VPN routes: the VNI where it fits RFC 8277's
    20 bits, else 0.  Nothing forwards on it (the fabric is not MPLS); import goes
    by route target."""
    return vni if vni <= MAX_LABEL else 0
