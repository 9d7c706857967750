"""Record, byte for byte, what a real BGP peer sends to an l3fab session.

Two halves:

* ``python -m l3fab.lab.capture record ...`` runs *inside* a lab namespace: a raw TCP
  socket driven by an l3fab :class:`speaker.session.Session` (it answers OPEN and
  KEEPALIVEs, nothing else), which appends every message the peer sends, as one
  hex line, to ``--out`` before the session sees it. It ends when the peer
  closes the connection (or on SIGTERM).
* ``python -m l3fab.lab.capture gobgp|exabgp --out DIR`` builds a two-namespace lab,
  starts the recorder and the real peer (:mod:`lab.peers.gobgp`,
  :mod:`lab.peers.exabgp`), makes the peer announce and withdraw routes of all
  four families and end the session, and writes ``DIR/<peer>-<version>-<transport>-session.hex``
  in the format of ``tests/unit/data`` (see its README).

The FRR 8.4.4 captures in ``tests/unit/data`` were recorded the same way, with
FRR configured by hand (the configuration is in that README).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The recorder half uses only the speaker; the lab modules (the other half) do nothing at
# import, and lab.peers.gobgp imports without grpc (GoBgp raises ImportError when used).
from l3fab.lab.netns import Lab, wait_until
from l3fab.lab.peers import gobgp as g
from l3fab.lab.peers.exabgp import ExaBgp
from l3fab.speaker.session import Session, SessionConfig
from l3fab.speaker.session.events import Disconnect, Send, StartTimer, StopTimer
from l3fab.speaker.wire import (IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6, CodecContext, Update,
                                decode_message)
from l3fab.speaker.wire.constants import HEADER_LEN

FAMILIES = {"ipv4": IPV4_UNICAST, "ipv6": IPV6_UNICAST, "vpnv4": VPNV4, "vpnv6": VPNV6}
REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ recorder (in the namespace)


def split_messages(buf: bytearray) -> list[bytes]:
    """Take every complete BGP message (header included) off the front of ``buf``."""
    out = []
    while len(buf) >= HEADER_LEN:
        length = int.from_bytes(buf[16:18], "big")
        if length < HEADER_LEN or len(buf) < length:
            break
        out.append(bytes(buf[:length]))
        del buf[:length]
    return out


def record(args: argparse.Namespace) -> int:
    families = tuple(FAMILIES[f] for f in args.family)
    cfg = SessionConfig(args.local_as, args.router_id, args.peer_as, families=families, passive=True,
                        hold_time=args.hold_time, graceful_restart_time=args.graceful_restart,
                        addpath_receive=tuple(FAMILIES[f] for f in args.addpath_receive))
    family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen, 179))
    listener.listen(1)
    out = open(args.out, "a", encoding="ascii")  # noqa: SIM115 - open for the whole run
    print(f"listening on {args.listen}", flush=True)
    conn, peer = listener.accept()
    listener.close()
    print(f"connection from {peer[0]}", flush=True)
    def on_sigterm(*_: object) -> None:
        conn.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)

    session = Session(cfg)
    timers: dict = {}

    def act(actions) -> bool:
        for a in actions:
            if isinstance(a, Send):
                conn.sendall(a.data)
            elif isinstance(a, StartTimer):
                timers[a.timer] = time.monotonic() + a.seconds
            elif isinstance(a, StopTimer):
                timers.pop(a.timer, None)
            elif isinstance(a, Disconnect):
                return False
            else:
                print(f"event {a}", flush=True)
        return True

    act(session.start())
    act(session.connection_made())
    buf = bytearray()
    alive = True
    while alive:
        wait = min(timers.values(), default=time.monotonic() + 1) - time.monotonic()
        conn.settimeout(max(0.01, wait))
        try:
            data = conn.recv(65536)
        except socket.timeout:
            now = time.monotonic()
            for timer in [t for t, at in timers.items() if at <= now]:
                del timers[timer]
                alive = act(session.timer_expired(timer)) and alive
            continue
        if not data:
            print("peer closed the connection", flush=True)
            break
        buf += data
        for message in split_messages(buf):
            out.write(message.hex() + "\n")
            out.flush()
            alive = act(session.data_received(message)) and alive
    print(f"done in state {session.state.value}: {session.last_error}", flush=True)
    conn.close()
    return 0


# ------------------------------------------------------------------ scenarios (on the host)


@dataclass(frozen=True)
class Transport:
    """Addresses of one capture: the peer dials l3fab over IPv4 or IPv6."""

    name: str
    l3fab: str
    peer: str


TRANSPORTS = {
    "ipv4": Transport("ipv4", "10.0.0.1", "10.0.0.2"),
    "ipv6": Transport("ipv6", "2001:db8::1", "2001:db8::2"),
}
L3FAB_AS, PEER_AS = 65001, 65002


def read_capture(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    return [bytes.fromhex(line) for line in path.read_text().splitlines() if line and not line.startswith("#")]


def updates(messages: list[bytes]) -> list[Update]:
    ctx = CodecContext(max_message=65535)
    return [m for m in (decode_message(raw, ctx) for raw in messages[1:]) if isinstance(m, Update)]


class Recorder:
    """The recorder process in ``ns`` (see module docstring)."""

    def __init__(self, lab, ns, transport: Transport, *, graceful_restart: int | None = 120) -> None:
        self.lab, self.ns = lab, lab.namespace(ns)
        self.path = lab.workdir / f"capture-{transport.name}.hex"
        argv = [sys.executable, "-m", "l3fab.lab.capture", "record", "--listen", transport.l3fab,
                "--out", str(self.path), "--local-as", str(L3FAB_AS), "--peer-as", str(PEER_AS),
                "--router-id", "10.0.0.1"]
        if graceful_restart is not None:
            argv += ["--graceful-restart", str(graceful_restart)]
        self.process = lab.popen(self.ns, argv, name="recorder", cwd=REPO)
        wait_until(lambda: "listening" in self.process.log_text(), 10, 0.05, what="recorder listening")

    def messages(self) -> list[bytes]:
        return read_capture(self.path)

    def wait_for(self, what: str, predicate, timeout: float = 30.0):
        def check():
            if not self.process.alive() and not predicate(self.messages()):
                raise RuntimeError(f"recorder exited: {self.process.log_text(3000)}")
            return predicate(self.messages())

        return wait_until(check, timeout, 0.1, what=what, retry_on=())

    def wait_end_of_rib(self, families, timeout: float = 30.0) -> None:
        self.wait_for(f"End-of-RIB for {families}",
                      lambda ms: set(families) <= {u.end_of_rib() for u in updates(ms)}, timeout)

    def wait_count(self, n: int, timeout: float = 30.0) -> None:
        self.wait_for(f"{n} UPDATEs", lambda ms: len(updates(ms)) >= n, timeout)

    def wait_closed(self, timeout: float = 30.0) -> None:
        wait_until(lambda: not self.process.alive(), timeout, 0.1, what="peer closing the session")


def make_lab(lab, transport: Transport):
    a = lab.add_namespace("l3fab")
    b = lab.add_namespace("peer")
    lab.link(a, b, "eth-peer", "eth-l3fab")
    for ns, ifname, v4, v6 in ((a, "eth-peer", "10.0.0.1/24", "2001:db8::1/64"),
                               (b, "eth-l3fab", "10.0.0.2/24", "2001:db8::2/64")):
        lab.add_address(ns, ifname, v4)
        lab.add_address(ns, ifname, v6)
    return a, b


def capture_gobgp(lab, transport: Transport) -> tuple[list[bytes], str]:
    """GoBGP 3.10 dials l3fab, announces, withdraws, then its peer is deleted (Cease 6/3)."""
    a, b = make_lab(lab, transport)
    rec = Recorder(lab, a, transport)
    gobgp = g.GoBgp(lab, b).start()
    gobgp.start_bgp(PEER_AS, "10.0.0.2", listen_port=-1)
    families = ("ipv4", "ipv6", "vpnv4", "vpnv6")
    # graceful restart on GoBGP's side too: it sends End-of-RIB only then
    conf = g.api.PeerConf(peer_asn=L3FAB_AS, neighbor_address=transport.l3fab)
    afi_safis = [g.api.AfiSafi(config=g.api.AfiSafiConfig(family=g.family(f).message(), enabled=True),
                               mp_graceful_restart=g.api.MpGracefulRestart(
                                   config=g.api.MpGracefulRestartConfig(enabled=True)))
                 for f in families]
    gobgp._api().AddPeer(g.api.AddPeerRequest(peer=g.api.Peer(
        conf=conf, timers=g.api.Timers(config=g.api.TimersConfig(connect_retry=1)),
        graceful_restart=g.api.GracefulRestart(enabled=True, restart_time=120),
        afi_safis=afi_safis)), timeout=10)
    rec.wait_end_of_rib({FAMILIES[f] for f in families})

    def add(fam, prefix, nexthop, large=(), **kw):
        path = g.build_path(g.family(fam), prefix, nexthop, **kw)
        if large:
            path.pattrs.append(g._pack(g.attr.LargeCommunitiesAttribute(communities=[
                g.attr.LargeCommunity(global_admin=x, local_data1=y, local_data2=z) for x, y, z in large])))
        return gobgp._api().AddPath(g.api.AddPathRequest(table_type=g.api.GLOBAL, path=path), timeout=10).uuid

    common = {"communities": ["65002:1", "65535:666"], "med": 77, "as_path": [65010, 4200000001]}
    nh4 = "10.0.0.2" if transport.name == "ipv4" else "2001:db8::2"
    u1 = add("ipv4", "10.1.0.0/16", nh4, large=[(65002, 1, 2)], **common)
    add("ipv4", "192.0.2.1/32", "10.0.0.2" if transport.name == "ipv6" else "2001:db8::2")
    add("ipv6", "2001:db8:1::/48", "2001:db8::2", large=[(65002, 1, 2)], **common)
    u4 = add("vpnv4", "10.2.0.0/24", "10.0.0.2", rd="65002:7", label=100,
             route_targets=["65002:100", "65002:200"], communities=["65002:1"], med=5)
    add("vpnv4", "10.3.0.0/24", "10.0.0.2", rd="10.0.0.2:8", label=101, route_targets=["10.0.0.2:100"])
    add("vpnv6", "2001:db8:2::/48", "2001:db8::2", rd="4200000001:9", label=102, route_targets=["65002:100"])
    u7 = add("vpnv6", "2001:db8:3::/48", "2001:db8::2", rd="65002:10", label=103, route_targets=["65002:100"])
    rec.wait_count(4 + 7)
    for fam, uuid in (("ipv4", u1), ("vpnv4", u4), ("vpnv6", u7)):
        gobgp.delete_path(fam, uuid)
    rec.wait_count(4 + 7 + 3)
    gobgp.delete_peer(transport.l3fab)
    rec.wait_closed()
    return rec.messages(), "deleted the neighbour (DeletePeer)"


def capture_exabgp(lab, transport: Transport) -> tuple[list[bytes], str]:
    """ExaBGP 5.0.15 dials l3fab, announces, withdraws, then tears the session down (Cease 6/2)."""
    a, b = make_lab(lab, transport)
    rec = Recorder(lab, a, transport)
    exa = ExaBgp(lab, b).start(peer_address=transport.l3fab, local_address=transport.peer,
                               local_as=PEER_AS, peer_as=L3FAB_AS, router_id="10.0.0.2")
    rec.wait_end_of_rib(set(FAMILIES.values()))
    common = ("community [65002:1 65535:666] large-community [65002:1:2] med 77 as-path [65010 4200000001] "
              "origin incomplete")
    other = "2001:db8::2" if transport.name == "ipv4" else "10.0.0.2"
    commands = [
        f"announce route 10.1.0.0/16 next-hop {transport.peer} {common}",
        f"announce route 192.0.2.1/32 next-hop {other}",
        f"announce route 2001:db8:1::/48 next-hop 2001:db8::2 {common}",
        "announce route 10.2.0.0/24 rd 65002:7 label [100] next-hop 10.0.0.2 "
        "extended-community [target:65002:100 target:65002:200] community [65002:1] med 5",
        "announce route 10.3.0.0/24 rd 10.0.0.2:8 label [101] next-hop 10.0.0.2 "
        "extended-community [target:10.0.0.2:100]",
        "announce route 2001:db8:2::/48 rd 4200000001:9 label [102] next-hop 2001:db8::2 "
        "extended-community [target:65002:100]",
        "announce route 2001:db8:3::/48 rd 65002:10 label [103] next-hop 2001:db8::2 "
        "extended-community [target:65002:100]",
    ]
    for command in commands:
        exa.announce(command)
        rec.wait_count(4 + commands.index(command) + 1)
    withdrawals = [
        "withdraw route 10.1.0.0/16 next-hop " + transport.peer,
        "withdraw route 10.2.0.0/24 rd 65002:7 label [100] next-hop 10.0.0.2",
        "withdraw route 2001:db8:3::/48 rd 65002:10 label [103] next-hop 2001:db8::2",
    ]
    for n, command in enumerate(withdrawals):
        exa.announce(command)
        rec.wait_count(4 + len(commands) + n + 1)
    # stopping ExaBGP (SIGTERM) closes the connection without a NOTIFICATION; the API's
    # teardown sends Cease with the subcode given
    exa.announce(f"neighbor {transport.l3fab} teardown 2")
    rec.wait_closed()
    return rec.messages(), "was told `neighbor ... teardown 2` over its API (Cease 6/2)"


PEERS = {
    "gobgp": ("gobgp-3.10", "GoBGP 3.10.0 (gobgpd, Debian package, driven over gRPC by lab/peers/gobgp.py)",
              capture_gobgp),
    "exabgp": ("exabgp-5.0.15", "ExaBGP 5.0.15 (PyPI, driven through its API by lab/peers/exabgp.py)",
               capture_exabgp),
}


def capture(args: argparse.Namespace) -> int:
    stem, who, scenario = PEERS[args.peer]
    for name in args.transport:
        transport = TRANSPORTS[name]
        with Lab(keep_workdir=args.keep) as lab:
            messages, ending = scenario(lab, transport)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        path = Path(args.out) / f"{stem}-{name}-session.hex"
        header = [
            f"# Every message {who} sent to an l3fab Session",
            f"# (AS {L3FAB_AS}, passive, all four families, graceful restart) over a veth pair, one per line as hex.",
            f"# {name.upper()} session ({transport.peer} -> {transport.l3fab}); "
            f"recorded by `python -m l3fab.lab.capture {args.peer} --transport {name}`",
            f"# ({time.strftime('%Y-%m')}): OPEN, KEEPALIVE, UPDATEs and End-of-RIB markers, "
            "withdrawals, then the peer",
            f"# {ending}.",
        ]
        path.write_text("\n".join(header + [m.hex() for m in messages]) + "\n")
        print(f"{path}: {len(messages)} messages")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l3fab.lab.capture", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the recording l3fab side (inside a namespace)")
    rec.add_argument("--listen", required=True, type=lambda s: str(ipaddress.ip_address(s)))
    rec.add_argument("--out", required=True)
    rec.add_argument("--local-as", type=int, default=L3FAB_AS)
    rec.add_argument("--peer-as", type=int, default=PEER_AS)
    rec.add_argument("--router-id", default="10.0.0.1")
    rec.add_argument("--hold-time", type=int, default=90)
    rec.add_argument("--family", action="append", choices=FAMILIES, default=None)
    rec.add_argument("--addpath-receive", action="append", choices=FAMILIES, default=[])
    rec.add_argument("--graceful-restart", type=int, default=None)
    for peer in PEERS:
        p = sub.add_parser(peer, help=f"capture what {peer} sends")
        p.add_argument("--out", default=str(REPO / "tests" / "unit" / "data"))
        p.add_argument("--transport", action="append", choices=TRANSPORTS, default=None)
        p.add_argument("--keep", action="store_true", help="keep the lab's work directory")
    args = parser.parse_args(argv)
    if args.command == "record":
        args.family = args.family or list(FAMILIES)
        return record(args)
    args.peer = args.command
    args.transport = args.transport or list(TRANSPORTS)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    return capture(args)


if __name__ == "__main__":
    sys.exit(main())
