"""NLRI encoding: IP prefixes (RFC 4271/4760), labeled VPN prefixes (RFC 4364/4659/8277)
and ADD-PATH path identifiers (RFC 7911).

Prefixes are small tuples so that 100,000 of them decode quickly and hash cheaply.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple, final

from .constants import Afi, Family, UpdateSubcode
from .errors import LocalProtocolError, UpdateMessageError
from .rd import RouteDistinguisher

_PAD = (b"", b"\x00", b"\x00" * 2, b"\x00" * 3, b"\x00" * 4, b"\x00" * 5, b"\x00" * 6, b"\x00" * 7,
        b"\x00" * 8, b"\x00" * 9, b"\x00" * 10, b"\x00" * 11, b"\x00" * 12, b"\x00" * 13,
        b"\x00" * 14, b"\x00" * 15, b"\x00" * 16)
_MASK = (0x00, 0x80, 0xC0, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE)
_AF: dict[int, socket.AddressFamily] = {Afi.IPV4: socket.AF_INET, Afi.IPV6: socket.AF_INET6}

WITHDRAW_LABEL = 0x800000  # RFC 8277 section 2.4: label field of a withdrawal
BOTTOM_OF_STACK = 1


# Prefix, VpnPrefix and PathId are final (never subclassed): code tests them with the fast
# ``type(n) is VpnPrefix``, and final lets mypy narrow the other branch of that test too.
@final
class Prefix(NamedTuple):
    """An IPv4 or IPv6 prefix.  ``packed`` is the full-width network address."""

    afi: int
    length: int
    packed: bytes

    @classmethod
    def parse(cls, text: str) -> "Prefix":
        """``10.0.0.0/24``, ``2001:db8::/32``; host bits are cleared; no length means a host route."""
        t = str(text).strip()
        addr, sep, length = t.partition("/")
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        try:
            packed = socket.inet_pton(fam, addr)
            width = len(packed) * 8
            plen = int(length) if sep else width
            if 0 <= plen <= width and (not sep or length.isdigit()):
                host = width - plen
                value = int.from_bytes(packed, "big") >> host << host if host else int.from_bytes(packed, "big")
                return tuple.__new__(cls, (Afi.IPV4 if width == 32 else Afi.IPV6, plen,
                                           value.to_bytes(width // 8, "big")))
        except (OSError, ValueError):
            pass
        try:
            net = ipaddress.ip_network(str(text).strip(), strict=False)
        except ValueError:
            raise ValueError(f"prefix {text!r} is not an IPv4 or IPv6 prefix") from None
        afi = Afi.IPV4 if net.version == 4 else Afi.IPV6
        return cls(afi, net.prefixlen, net.network_address.packed)

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network((self.packed, self.length))

    def __str__(self) -> str:
        return f"{socket.inet_ntop(_AF[self.afi], self.packed)}/{self.length}"

    def wire(self) -> bytes:
        """Length octet plus the minimum number of address octets."""
        return bytes((self.length,)) + self.packed[: (self.length + 7) >> 3]


@final
class VpnPrefix(NamedTuple):
    """A labeled VPN-IPv4/VPN-IPv6 NLRI: route distinguisher + prefix, with its label stack.

    Identity (for RIBs) is ``(rd, prefix)``; labels belong to the path.
    """

    rd: RouteDistinguisher
    prefix: Prefix
    labels: tuple[int, ...] = ()

    @property
    def key(self) -> tuple[RouteDistinguisher, Prefix]:
        return (self.rd, self.prefix)

    def __str__(self) -> str:
        return f"{self.rd}:{self.prefix}"


@final
class PathId(NamedTuple):
    """An NLRI received or sent with an ADD-PATH path identifier (RFC 7911)."""

    path_id: int
    nlri: "Prefix | VpnPrefix"

    def __str__(self) -> str:
        return f"{self.nlri} path-id {self.path_id}"


Nlri = Prefix | VpnPrefix | PathId


def _bad_nlri(reason: str, data: bytes = b"") -> UpdateMessageError:
    # RFC 7606 section 5.3: an NLRI field that cannot be parsed means "session reset".
    return UpdateMessageError(UpdateSubcode.INVALID_NETWORK_FIELD, b"", reason)


def _path_id(data: bytes, i: int, end: int) -> tuple[int, int]:
    """RFC 7911: the 4-octet path identifier before an NLRI; returns (id, next offset)."""
    if i + 4 > end:
        raise _bad_nlri("truncated ADD-PATH path identifier")
    if i + 4 >= end:
        raise _bad_nlri("ADD-PATH path identifier without prefix")
    return int.from_bytes(data[i : i + 4], "big"), i + 4


def _check_host_bits(afi: int, length: int, raw: bytes) -> bytes:
    """Return the address padded to full width with any bits beyond ``length`` cleared."""
    nbytes = len(raw)
    if length & 7 and nbytes:
        last = raw[-1] & _MASK[length & 7]
        if last != raw[-1]:
            raw = raw[:-1] + bytes((last,))
    return raw + _PAD[(4 if afi == Afi.IPV4 else 16) - nbytes]


def _uniform_records(data: bytes, size: int) -> int:
    """How many ``size``-octet records ``data`` splits into exactly, else 0."""
    n = len(data)
    return n // size if n and not n % size else 0


def _same_columns(data: bytes, size: int, columns: int) -> bool:
    """Do all ``size``-octet records share their first ``columns`` octets?  Checked one
    column at a time with strided slices, which run at C speed."""
    count = len(data) // size
    for c in range(columns):
        col = data[c::size]
        if col != bytes((data[c],)) * count:
            return False
    return True


def decode_prefixes(afi: int, data: bytes, addpath: bool = False) -> list[Nlri]:
    """Decode an unlabeled NLRI sequence (IPv4 NLRI field, or MP_REACH/UNREACH for SAFI 1)."""
    if not addpath and data:
        # Fast path: a run of full-length host routes (/32 or /128), the common bulk case.
        full = 32 if afi == Afi.IPV4 else 128
        size = 1 + (full >> 3)
        if data[0] == full and _uniform_records(data, size) and data[0::size] == bytes((full,)) * (len(data) // size):
            new = tuple.__new__
            a = int(afi)
            return [new(Prefix, (a, full, data[i + 1 : i + size])) for i in range(0, len(data), size)]
    out: list[Nlri] = []
    append = out.append
    maxlen = 32 if afi == Afi.IPV4 else 128
    width = maxlen >> 3
    pad = _PAD
    new = tuple.__new__  # NamedTuple construction without its Python-level __new__
    afi = int(afi)
    i = 0
    end = len(data)
    while i < end:
        path_id = None
        if addpath:
            path_id, i = _path_id(data, i, end)
        plen = data[i]
        if plen > maxlen:
            raise _bad_nlri(f"prefix length {plen} exceeds {maxlen}")
        nb = (plen + 7) >> 3
        j = i + 1 + nb
        if j > end:
            raise _bad_nlri(f"prefix of length {plen} overruns the NLRI field")
        raw = data[i + 1 : j]
        if plen & 7:
            pfx = new(Prefix, (afi, plen, _check_host_bits(afi, plen, raw)))
        else:
            pfx = new(Prefix, (afi, plen, raw + pad[width - nb]))
        append(pfx if path_id is None else PathId(path_id, pfx))
        i = j
    return out


def decode_vpn_prefixes(afi: int, data: bytes, addpath: bool = False, withdraw: bool = False) -> list[Nlri]:
    """Decode labeled VPN NLRI (RFC 4364 section 4.3.4, RFC 8277 label stack).

    Route distinguishers and label stacks repeat across the NLRI of one UPDATE, so
    their decoded objects are shared through small per-call caches.
    """
    out: list[Nlri] = []
    append = out.append
    maxlen = 32 if afi == Afi.IPV4 else 128
    width = maxlen >> 3
    pad = _PAD
    new = tuple.__new__
    afi = int(afi)
    if not addpath and len(data) >= 12:
        # Fast path: records of one shape (same length, one label with bottom-of-stack, same
        # RD), as a sender packs them for one attribute set: verified column by column.
        bits = data[0]
        plen = bits - 88
        if 0 <= plen <= maxlen and data[3] & BOTTOM_OF_STACK:
            nb = (plen + 7) >> 3
            size = 12 + nb
            if plen & 7 == 0 and _uniform_records(data, size) and _same_columns(data, size, 12):
                rd = RouteDistinguisher.unpack(data[4:12])
                labels: tuple[int, ...] = () if withdraw else (int.from_bytes(data[1:4], "big") >> 4,)
                tail = _PAD[(maxlen >> 3) - nb]
                return [new(VpnPrefix, (rd, new(Prefix, (afi, plen, data[i + 12 : i + size] + tail)), labels))
                        for i in range(0, len(data), size)]
    rd_cache: dict[bytes, RouteDistinguisher] = {}
    label_cache: dict[bytes, tuple[int, ...]] = {}
    i = 0
    end = len(data)
    while i < end:
        path_id = None
        if addpath:
            path_id, i = _path_id(data, i, end)
        bits = data[i]
        i += 1
        # One 3-octet label field (RFC 8277 sections 2.2 and 2.4): without the Multiple
        # Labels Capability, which l3fab does not advertise, there is exactly one label
        # and its bottom-of-stack bit is ignored on reception.  In a withdrawal the
        # field holds the compatibility value (0x800000, or 0x000000 from RFC 3107
        # speakers) and is ignored too.  FRR reads VPN NLRI the same way.
        if bits < 24 or i + 3 > end:
            raise _bad_nlri("VPN NLRI too short for its label")
        if withdraw:
            labels = ()
        else:
            raw_label = data[i : i + 3]
            cached_labels = label_cache.get(raw_label)
            if cached_labels is None:
                cached_labels = label_cache[raw_label] = (int.from_bytes(raw_label, "big") >> 4,)
            labels = cached_labels
        i += 3
        bits -= 24
        if bits < 64 or i + 8 > end:
            raise _bad_nlri("VPN NLRI too short for its route distinguisher")
        raw_rd = data[i : i + 8]
        cached_rd = rd_cache.get(raw_rd)
        if cached_rd is None:
            cached_rd = rd_cache[raw_rd] = RouteDistinguisher.unpack(raw_rd)
        rd = cached_rd
        i += 8
        plen = bits - 64
        if plen > maxlen:
            raise _bad_nlri(f"VPN prefix length {plen} exceeds {maxlen}")
        nb = (plen + 7) >> 3
        j = i + nb
        if j > end:
            raise _bad_nlri(f"VPN prefix of length {plen} overruns the NLRI field")
        if plen & 7:
            pfx = new(Prefix, (afi, plen, _check_host_bits(afi, plen, data[i:j])))
        else:
            pfx = new(Prefix, (afi, plen, data[i:j] + pad[width - nb]))
        i = j
        vp = new(VpnPrefix, (rd, pfx, labels))
        append(vp if path_id is None else PathId(path_id, vp))
    return out


def decode_nlri(family: Family, data: bytes, addpath: bool = False, withdraw: bool = False) -> list[Nlri]:
    if family.is_vpn:
        return decode_vpn_prefixes(family.afi, data, addpath, withdraw)
    return decode_prefixes(family.afi, data, addpath)


def encode_label_stack(labels: tuple[int, ...]) -> bytes:
    """The label field: one label with the bottom-of-stack bit, or the withdrawal value.

    More than one label needs the Multiple Labels Capability (RFC 8277 section 2.1),
    which l3fab does not negotiate; peers (FRR among them) would read the second
    label as the start of the route distinguisher.
    """
    if not labels:
        return (WITHDRAW_LABEL).to_bytes(3, "big")
    if len(labels) > 1:
        raise LocalProtocolError(f"label stack {labels}: only one label can be sent without the "
                                 "Multiple Labels Capability (RFC 8277)")
    out = bytearray()
    for n, label in enumerate(labels):
        if not 0 <= label < (1 << 20):
            raise LocalProtocolError(f"MPLS label {label} out of range 0..1048575")
        bos = 1 if n == len(labels) - 1 else 0
        out += ((label << 4) | bos).to_bytes(3, "big")
    return bytes(out)


def encode_nlri(nlri: Nlri, withdraw: bool = False) -> bytes:
    """Encode one NLRI.  ADD-PATH identifiers are written when ``nlri`` is a :class:`PathId`."""
    if type(nlri) is Prefix:
        return bytes((nlri.length,)) + nlri.packed[: (nlri.length + 7) >> 3]
    if type(nlri) is PathId:
        return nlri.path_id.to_bytes(4, "big") + encode_nlri(nlri.nlri, withdraw)
    if type(nlri) is VpnPrefix:
        stack = encode_label_stack(() if withdraw else nlri.labels)
        pfx = nlri.prefix
        bits = len(stack) * 8 + 64 + pfx.length
        return bytes((bits,)) + stack + nlri.rd.pack() + pfx.packed[: (pfx.length + 7) >> 3]
    raise LocalProtocolError(f"cannot encode NLRI {nlri!r}")


def nlri_family_ok(family: Family, nlri: Nlri) -> bool:
    inner = nlri.nlri if type(nlri) is PathId else nlri
    if family.is_vpn:
        return type(inner) is VpnPrefix and inner.prefix.afi == family.afi
    return type(inner) is Prefix and inner.afi == family.afi
