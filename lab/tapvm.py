"""A tiny user-space "VM" that holds a TAP device, for dataplane tests.

A TAP with no process attached is NO-CARRIER and its routes are ``linkdown``,
so an endpoint behind a TAP needs a process on the other end. This one opens
the TAP (``TUNSETIFF`` with ``IFF_TAP | IFF_NO_PI``) in the namespace it runs
in and behaves like a minimal VM with one IPv4 /32, optionally one IPv6 /128
and its EUI-64 link-local address. Its gateway is 169.254.0.1 / fe80::1, owned
by the host side (ARCHITECTURE.md, "Endpoint link"):

* answers ARP and IPv6 neighbour solicitations for its own addresses;
* answers ICMP and ICMPv6 echo requests, back to the request's Ethernet
  source (no routing table), TTL / hop limit 64;
* with ``--ping TARGET`` (repeatable) resolves the gateway and sends
  ``--count`` echo requests to each target through it, counting replies;
* writes what it saw as JSON to ``--stats`` (temporary file + rename) every
  0.1 s and when SIGTERM ends it.

Standard library only; frames that do not parse are counted and dropped.
:class:`TapVm` starts it inside a :class:`lab.netns.Lab` namespace.
"""
from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import select
import signal
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from l3fab.lab.netns import CommandFailed, Lab, Namespace, Process, check_ifname, wait_until

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int), linux/if_tun.h
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_HEADER = 14
BROADCAST = b"\xff" * 6
PROTO_ICMP, PROTO_ICMPV6 = 1, 58
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ND_SOLICIT, ND_ADVERT = 135, 136
ND_OPT_SOURCE_LL, ND_OPT_TARGET_LL = 1, 2
ND_HOP_LIMIT = 255  # RFC 4861 7.1.1: anything else did not come from this link
HOP_LIMIT = 64

GATEWAY4 = ipaddress.IPv4Address("169.254.0.1")
GATEWAY6 = ipaddress.IPv6Address("fe80::1")
STATS_PERIOD = 0.1
RESOLVE_PERIOD = 0.3
PING_PAYLOAD = 56  # bytes after the ICMP header, as ping(8) sends
READ_BURST = 64
FRAME_MAX = 65536


class Malformed(ValueError):
    """A frame too short or inconsistent to act on."""


# -- packet bytes ---------------------------------------------------------

def inet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum; 0 when ``data`` carries a correct checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """Checksum over the IPv6 pseudo-header (RFC 8200 8.1) and the ICMPv6 message."""
    pseudo = src + dst + struct.pack("!I3xB", len(message), PROTO_ICMPV6)
    return inet_checksum(pseudo + message)


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    try:
        raw = bytes(int(p, 16) for p in parts if len(p) == 2)
    except ValueError:
        raw = b""
    if len(raw) != 6 or len(parts) != 6:
        raise ValueError(f"MAC {text!r}: expected six hex pairs like 02:00:00:00:00:02")
    if raw[0] & 1:
        raise ValueError(f"MAC {text!r}: a multicast address cannot be a VM's MAC")
    return raw


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def link_local(mac: bytes) -> ipaddress.IPv6Address:
    """fe80:: + modified EUI-64 of ``mac`` (RFC 4291 appendix A: U/L bit flipped)."""
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui)


def solicited_node(addr: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(ipaddress.IPv6Address("ff02::1:ff00:0").packed[:13]
                                 + addr.packed[13:])


def multicast_mac(addr: ipaddress.IPv6Address) -> bytes:
    """33:33 + the low 32 bits of the group (RFC 2464 7)."""
    return b"\x33\x33" + addr.packed[12:]


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op, sha, spa, tha, tpa)


def ipv4_packet(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, HOP_LIMIT,
                         proto, 0, src, dst)
    return header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:] + payload


def icmp_message(kind: int, body: bytes) -> bytes:
    message = struct.pack("!BBH", kind, 0, 0) + body
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


def icmpv6_packet(src: bytes, dst: bytes, kind: int, body: bytes, hop_limit: int) -> bytes:
    """An IPv6 header with an ICMPv6 message of ``kind`` (code 0) carrying ``body``."""
    message = struct.pack("!BBH", kind, 0, 0) + body
    message = (message[:2] + struct.pack("!H", icmpv6_checksum(src, dst, message))
               + message[4:])
    header = struct.pack("!IHBB16s16s", 6 << 28, len(message), PROTO_ICMPV6, hop_limit, src, dst)
    return header + message


def nd_options(data: bytes) -> dict[int, bytes]:
    """Type -> value of the ND options in ``data`` (RFC 4861 4.6); length 0 is malformed."""
    options: dict[int, bytes] = {}
    while len(data) >= 2:
        kind, units = data[0], data[1]
        if units == 0 or units * 8 > len(data):
            raise Malformed("bad ND option length")
        options.setdefault(kind, data[2:units * 8])
        data = data[units * 8:]
    return options


# -- what the VM saw, as written to --stats --------------------------------

@dataclass
class PingStats:
    """One ``--ping`` target: echo requests sent through the gateway, replies received."""

    target: str
    count: int
    gateway: str
    gateway_mac: str | None = None
    resolve_attempts: int = 0
    sent: int = 0
    received: int = 0


@dataclass
class Stats:
    """Counters of one VM. ``echo_*`` map protocol (``icmp``/``icmpv6``) -> source -> count."""

    frames_rx: int = 0
    frames_tx: int = 0
    tx_errors: int = 0
    malformed: int = 0
    echo_requests: dict[str, dict[str, int]] = field(default_factory=dict)
    echo_replies: dict[str, dict[str, int]] = field(default_factory=dict)
    pings: dict[str, PingStats] = field(default_factory=dict)

    def requests(self, protocol: str, source: str) -> int:
        return self.echo_requests.get(protocol, {}).get(source, 0)

    def replies(self, protocol: str, source: str) -> int:
        return self.echo_replies.get(protocol, {}).get(source, 0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Stats":
        data = json.loads(text)
        data["pings"] = {k: PingStats(**v) for k, v in data.get("pings", {}).items()}
        return cls(**data)


def _bump(table: dict[str, dict[str, int]], protocol: str, source: IPAddress) -> None:
    per_source = table.setdefault(protocol, {})
    per_source[str(source)] = per_source.get(str(source), 0) + 1


# -- the VM itself: frames in, frames out (no I/O) ---------------------------

@dataclass
class _Pinger:
    """Progress of one ``--ping`` target; ``stats`` is what gets reported."""

    target: IPAddress
    source: IPAddress
    interval: float
    ident: int
    stats: PingStats
    next_at: float = 0.0
    gateway_mac: bytes | None = None
    seen: set[int] = field(default_factory=set)

    @property
    def gateway(self) -> IPAddress:
        return gateway_for(self.target)


def gateway_for(target: IPAddress) -> IPAddress:
    """Every packet leaves through the host's gateway address of the target's family."""
    return GATEWAY4 if target.version == 4 else GATEWAY6


class Vm:
    """The VM's behaviour as a pure function of frames and time, so it is testable without a TAP.

    :meth:`receive` takes one Ethernet frame and returns the frames to send;
    :meth:`tick` returns the frames due by ``now`` (gateway resolution, pings).
    """

    def __init__(self, mac: bytes, ipv4: ipaddress.IPv4Address,
                 ipv6: ipaddress.IPv6Address | None = None) -> None:
        self.mac = mac
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.link_local = link_local(mac)
        self.own6 = {a for a in (ipv6, self.link_local) if a is not None}
        self.stats = Stats()
        self.pingers: list[_Pinger] = []

    def add_ping(self, target: IPAddress, count: int, interval: float, now: float = 0.0) -> None:
        if target.version == 4:
            source: IPAddress = self.ipv4
        elif target.is_link_local:
            source = self.link_local
        elif self.ipv6 is not None:
            source = self.ipv6
        else:
            raise ValueError(f"--ping {target}: a global IPv6 target needs --ipv6")
        stats = PingStats(str(target), count, str(gateway_for(target)))
        ident = (os.getpid() + len(self.pingers)) & 0xFFFF
        self.pingers.append(_Pinger(target, source, interval, ident, stats, next_at=now))
        self.stats.pings[str(target)] = stats

    # -- time-driven -----------------------------------------------------

    def next_event(self) -> float | None:
        """When :meth:`tick` next has something to send, or None."""
        due = [p.next_at for p in self.pingers if p.stats.sent < p.stats.count]
        return min(due) if due else None

    def tick(self, now: float) -> list[bytes]:
        out = []
        for p in self.pingers:
            if p.stats.sent >= p.stats.count or now < p.next_at:
                continue
            if p.gateway_mac is None:
                p.stats.resolve_attempts += 1
                p.next_at = now + RESOLVE_PERIOD
                out.append(self._solicit(p.gateway))
            else:
                p.stats.sent += 1
                p.next_at = now + p.interval
                out.append(self._echo_request(p))
        return out

    def _solicit(self, gateway: IPAddress) -> bytes:
        if gateway.version == 4:
            return ethernet(BROADCAST, self.mac, ETH_P_ARP,
                            arp(1, self.mac, self.ipv4.packed, bytes(6), gateway.packed))
        group = solicited_node(gateway)
        body = (bytes(4) + gateway.packed
                + struct.pack("!BB", ND_OPT_SOURCE_LL, 1) + self.mac)
        packet = icmpv6_packet(self.link_local.packed, group.packed, ND_SOLICIT, body, ND_HOP_LIMIT)
        return ethernet(multicast_mac(group), self.mac, ETH_P_IPV6, packet)

    def _echo_request(self, p: _Pinger) -> bytes:
        stamp = struct.pack("!d", time.time())
        body = struct.pack("!HH", p.ident, p.stats.sent) + stamp + bytes(PING_PAYLOAD - len(stamp))
        assert p.gateway_mac is not None
        if p.target.version == 4:
            packet = ipv4_packet(p.source.packed, p.target.packed, PROTO_ICMP,
                                 icmp_message(ICMP_ECHO_REQUEST, body))
            return ethernet(p.gateway_mac, self.mac, ETH_P_IP, packet)
        packet = icmpv6_packet(p.source.packed, p.target.packed, ICMPV6_ECHO_REQUEST, body,
                               HOP_LIMIT)
        return ethernet(p.gateway_mac, self.mac, ETH_P_IPV6, packet)

    def _learn_gateway(self, gateway: IPAddress, mac: bytes) -> None:
        """Any ARP/ND message from the gateway tells its MAC (the host sends them unasked, too)."""
        for p in self.pingers:
            if p.gateway == gateway and p.gateway_mac is None and not mac[0] & 1:
                p.gateway_mac = mac
                p.stats.gateway_mac = mac_text(mac)
                p.next_at = 0.0  # send the first echo request at once

    def _echo_reply_seen(self, source: IPAddress, body: bytes) -> None:
        ident, seq = struct.unpack("!HH", body[:4])
        for p in self.pingers:
            if p.ident == ident and p.target == source and 0 < seq <= p.stats.sent \
                    and seq not in p.seen:
                p.seen.add(seq)
                p.stats.received += 1

    # -- frame-driven ----------------------------------------------------

    def receive(self, frame: bytes) -> list[bytes]:
        """Handle one Ethernet frame; a frame that does not parse is counted, never raised."""
        self.stats.frames_rx += 1
        try:
            return self._frame(frame)
        except (struct.error, ValueError):  # Malformed is a ValueError
            self.stats.malformed += 1
            return []

    def _frame(self, frame: bytes) -> list[bytes]:
        if len(frame) < ETH_HEADER:
            raise Malformed("short Ethernet frame")
        dst, src = frame[:6], frame[6:12]
        (ethertype,) = struct.unpack("!H", frame[12:14])
        if dst != self.mac and not dst[0] & 1:
            return []  # unicast to someone else
        handlers: dict[int, Callable[[bytes, bytes], list[bytes]]] = {
            ETH_P_ARP: self._arp, ETH_P_IP: self._ipv4, ETH_P_IPV6: self._ipv6}
        handler = handlers.get(ethertype)
        return handler(src, frame[ETH_HEADER:]) if handler else []

    def _arp(self, eth_src: bytes, body: bytes) -> list[bytes]:
        if len(body) < 28:
            raise Malformed("short ARP")
        htype, ptype, hlen, plen, op, sha, spa, _tha, tpa = struct.unpack(
            "!HHBBH6s4s6s4s", body[:28])
        if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4):
            return []
        sender = ipaddress.IPv4Address(spa)
        if sender == GATEWAY4:
            self._learn_gateway(sender, sha)
        if op == 1 and tpa == self.ipv4.packed:
            return [ethernet(eth_src, self.mac, ETH_P_ARP, arp(2, self.mac, tpa, sha, spa))]
        return []

    def _ipv4(self, eth_src: bytes, body: bytes) -> list[bytes]:
        if len(body) < 20 or body[0] >> 4 != 4:
            raise Malformed("short or not IPv4")
        ihl = (body[0] & 0x0F) * 4
        total, frag, proto = struct.unpack("!H2xHxB", body[2:10])
        if ihl < 20 or not ihl <= total <= len(body) or inet_checksum(body[:ihl]):
            raise Malformed("bad IPv4 header")
        if proto != PROTO_ICMP or frag & 0x3FFF:
            return []  # not ICMP, or a fragment: a minimal VM does not reassemble
        src, dst = body[12:16], body[16:20]
        message = body[ihl:total]
        if len(message) < 8 or inet_checksum(message):
            raise Malformed("short ICMP or bad checksum")
        source = ipaddress.IPv4Address(src)
        if message[0] == ICMP_ECHO_REQUEST and dst == self.ipv4.packed:
            _bump(self.stats.echo_requests, "icmp", source)
            packet = ipv4_packet(dst, src, PROTO_ICMP, icmp_message(ICMP_ECHO_REPLY, message[4:]))
            return [ethernet(eth_src, self.mac, ETH_P_IP, packet)]
        if message[0] == ICMP_ECHO_REPLY and dst == self.ipv4.packed:
            _bump(self.stats.echo_replies, "icmp", source)
            self._echo_reply_seen(source, message[4:])
        return []

    def _ipv6(self, eth_src: bytes, body: bytes) -> list[bytes]:
        if len(body) < 40 or body[0] >> 4 != 6:
            raise Malformed("short or not IPv6")
        length, next_header, hop_limit = struct.unpack("!HBB", body[4:8])
        if 40 + length > len(body):
            raise Malformed("IPv6 payload length beyond the frame")
        if next_header != PROTO_ICMPV6:
            return []  # extension headers (MLD's hop-by-hop) and other protocols: not for us
        src, dst = body[8:24], body[24:40]
        message = body[40:40 + length]
        if len(message) < 8 or icmpv6_checksum(src, dst, message):
            raise Malformed("short ICMPv6 or bad checksum")
        source, target = ipaddress.IPv6Address(src), ipaddress.IPv6Address(dst)
        kind, code = message[0], message[1]
        if kind == ICMPV6_ECHO_REQUEST and target in self.own6:
            _bump(self.stats.echo_requests, "icmpv6", source)
            packet = icmpv6_packet(dst, src, ICMPV6_ECHO_REPLY, message[4:], HOP_LIMIT)
            return [ethernet(eth_src, self.mac, ETH_P_IPV6, packet)]
        if kind == ICMPV6_ECHO_REPLY and target in self.own6:
            _bump(self.stats.echo_replies, "icmpv6", source)
            self._echo_reply_seen(source, message[4:])
            return []
        if kind in (ND_SOLICIT, ND_ADVERT) and hop_limit == ND_HOP_LIMIT and code == 0:
            return self._neighbour(eth_src, kind, source, message)
        return []

    def _neighbour(self, eth_src: bytes, kind: int, source: ipaddress.IPv6Address,
                   message: bytes) -> list[bytes]:
        if len(message) < 24:
            raise Malformed("short ND message")
        target = ipaddress.IPv6Address(message[8:24])
        options = nd_options(message[24:])
        if kind == ND_ADVERT:
            if target == GATEWAY6:
                self._learn_gateway(target, options.get(ND_OPT_TARGET_LL, eth_src)[:6])
            return []
        if source == GATEWAY6 and ND_OPT_SOURCE_LL in options:
            self._learn_gateway(source, options[ND_OPT_SOURCE_LL][:6])
        if target not in self.own6:
            return []
        # RFC 4861 7.2.4: Solicited unless answering DAD (source ::), then to all-nodes.
        solicited = not source.is_unspecified
        dst = source if solicited else ipaddress.IPv6Address("ff02::1")
        flags = 0x60000000 if solicited else 0x20000000  # S|O, or O alone
        body = (struct.pack("!I", flags) + target.packed
                + struct.pack("!BB", ND_OPT_TARGET_LL, 1) + self.mac)
        packet = icmpv6_packet(target.packed, dst.packed, ND_ADVERT, body, ND_HOP_LIMIT)
        return [ethernet(eth_src if solicited else multicast_mac(dst), self.mac, ETH_P_IPV6,
                         packet)]


# -- the process: a TAP, a loop, a stats file -------------------------------

def open_tap(ifname: str) -> int:
    """Create or attach TAP ``ifname`` in this namespace; it lives while the fd is open."""
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def write_stats(path: Path, stats: Stats) -> None:
    """Readers never see half a file: write beside it, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(stats.to_json())
    os.replace(tmp, path)


def serve(fd: int, vm: Vm, stats_path: Path, go: Path | None = None) -> None:
    """Answer frames and send pings until SIGTERM/SIGINT; stats go to ``stats_path``.
    With ``go``, the pings wait until that file exists (the host side is configured)."""
    held = go is not None
    if held:
        for p in vm.pingers:
            p.next_at = float("inf")
    stop = []
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))

    def send(frames: list[bytes]) -> None:
        for frame in frames:
            try:
                os.write(fd, frame)
                vm.stats.frames_tx += 1
            except OSError:  # EIO while the host side is down: the frame is lost, as on a wire
                vm.stats.tx_errors += 1

    next_write = 0.0
    while not stop:
        now = time.monotonic()
        if held and go is not None and go.exists():  # held: go is not None
            held = False
            for p in vm.pingers:
                p.next_at = now
        send(vm.tick(now))
        if now >= next_write:
            write_stats(stats_path, vm.stats)
            next_write = now + STATS_PERIOD
        event = vm.next_event()
        due = next_write if event is None or event == float("inf") else min(next_write, event)
        ready, _, _ = select.select([fd, wake_r], [], [], max(0.0, due - time.monotonic()))
        if wake_r in ready:
            os.read(wake_r, 512)
        if fd in ready:
            for _ in range(READ_BURST):
                try:
                    frame = os.read(fd, FRAME_MAX)
                except OSError:  # EAGAIN: drained
                    break
                send(vm.receive(frame))
    write_stats(stats_path, vm.stats)


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type whose error (after argparse's "argument --x:") names the value."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            message = str(exc) if repr(text) in str(exc) else f"{text!r}: {exc}"
            raise argparse.ArgumentTypeError(message) from None
    return convert


def _positive(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    return convert


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m l3fab.lab.tapvm", description=__doc__.split("\n")[0])
    parser.add_argument("--ifname", required=True, help="TAP device to create or attach")
    parser.add_argument("--mac", required=True, type=_arg(mac_bytes), help="the VM's MAC")
    parser.add_argument("--ipv4", required=True, type=_arg(ipaddress.IPv4Address))
    parser.add_argument("--ipv6", type=_arg(ipaddress.IPv6Address))
    parser.add_argument("--stats", required=True, type=Path, help="JSON counters, rewritten atomically")
    parser.add_argument("--ping", action="append", default=[], metavar="TARGET",
                        type=_arg(ipaddress.ip_address),
                        help="send echo requests to TARGET via the gateway (repeatable)")
    parser.add_argument("--count", type=_arg(_positive(int)), default=3)
    parser.add_argument("--interval", type=_arg(_positive(float)), default=0.1)
    parser.add_argument("--ping-when", type=Path, metavar="FILE",
                        help="start the pings only once FILE exists (the host side is ready)")
    args = parser.parse_args(argv)
    try:
        check_ifname(args.ifname)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    vm = Vm(args.mac, args.ipv4, args.ipv6)
    try:
        for target in args.ping:
            vm.add_ping(target, args.count, args.interval)
    except ValueError as exc:
        print(f"tapvm: {exc}", file=sys.stderr)
        return 2
    try:
        fd = open_tap(args.ifname)
    except OSError as exc:
        print(f"tapvm: --ifname {args.ifname!r}: cannot attach TAP: {exc}", file=sys.stderr)
        return 1
    print(f"tapvm {args.ifname}: mac {mac_text(vm.mac)} ipv4 {vm.ipv4} ipv6 {vm.ipv6} "
          f"link-local {vm.link_local}", flush=True)
    try:
        serve(fd, vm, args.stats, args.ping_when)
    finally:
        os.close(fd)
    s = vm.stats
    print(f"tapvm {args.ifname}: stopped; rx {s.frames_rx} tx {s.frames_tx} "
          f"malformed {s.malformed} tx-errors {s.tx_errors}", flush=True)
    return 0


# -- test helper ---------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@dataclass
class TapVm:
    """A running ``lab.tapvm`` process inside a lab namespace, seen from a test."""

    lab: Lab = field(repr=False)
    ns: Namespace
    ifname: str
    stats_file: Path
    process: Process = field(repr=False)

    @classmethod
    def start(cls, lab: Lab, ns: Namespace | str, ifname: str, mac: str, ipv4: str, ipv6: str | None = None,
              *, ping: tuple[str, ...] = (), count: int = 3, interval: float = 0.1,
              ping_when: Path | None = None,
              timeout: float = 10.0) -> "TapVm":
        """Start the VM on TAP ``ifname`` in ``ns``; return once the TAP and stats exist."""
        ns = lab.namespace(ns)
        stats_file = lab.workdir / f"{ns.name}-tapvm-{ifname}.json"
        argv = [sys.executable, "-m", "l3fab.lab.tapvm", "--ifname", ifname, "--mac", mac,
                "--ipv4", ipv4, "--stats", str(stats_file),
                "--count", str(count), "--interval", str(interval)]
        if ping_when is not None:
            argv += ["--ping-when", str(ping_when)]
        if ipv6:
            argv += ["--ipv6", ipv6]
        for target in ping:
            argv += ["--ping", target]
        process = lab.popen(ns, argv, name=f"tapvm-{ifname}", cwd=REPO)
        vm = cls(lab, ns, ifname, stats_file, process)
        wait_until(vm._ready, timeout, 0.05, what=f"tapvm {ns.name}/{ifname} up",
                   retry_on=(CommandFailed,))
        return vm

    def _ready(self) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"tapvm {self.ifname} exited: {self.process.log_text(3000)}")
        return bool(self.ns.ip_json("link", "show", "dev", self.ifname)) \
            and self.stats_file.exists()

    def stats(self) -> Stats:
        return Stats.from_json(self.stats_file.read_text())

    def stop(self) -> int | None:
        """SIGTERM (the VM writes its final stats and exits 0); returns the exit code."""
        return self.lab.stop(self.process)


if __name__ == "__main__":
    sys.exit(main())
