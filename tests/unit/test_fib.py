"""FIB without a kernel: model normalisation, netlink encoding round trips, the diff, ENOMEM retries."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from l3fab.fib import FibNextHop, FibRoute, RouteKind, Seg6Encap, seg6_route, unicast, unreachable
from l3fab.fib import netlink as nl
from l3fab.fib.controller import Fib
from l3fab.fib.kernel import KernelFib
from l3fab.fib.reconcile import diff

IFINDEX = {"up0": 7, "up1": 8}.__getitem__


def encode(route: FibRoute) -> nl.Prepared:
    return nl.Encoder(IFINDEX).prepare(route)


def as_dump(prepared: nl.Prepared) -> bytes:
    """The RTM_NEWROUTE as a dump would carry it (same layout the kernel uses)."""
    return nl.newroute(prepared.body, 1, replace=False)


ROUTES = [
    unicast(100, "10.1.0.0/24", FibNextHop("10.0.0.2", "up0"), FibNextHop("10.0.0.3", "up1", weight=3)),
    unicast(100, "10.2.0.0/24", FibNextHop("fe80::2", "up0")),                       # RFC 8950
    unicast(100, "2001:db8::/64", FibNextHop("fe80::2", "up0"), FibNextHop("fe80::3", "up1")),
    seg6_route(100, "10.3.0.1/32", "fc00::1", ifname="up0"),
    seg6_route(70000, "2001:db8:1::1/128", "fc00::2", ifname="up0", metric=5),
    unreachable(100, "0.0.0.0/0"),
    unreachable(100, "::/0"),
    unicast(100, "10.4.0.0/24", FibNextHop("10.0.0.2", onlink=True, ifname="up0")),
    FibRoute(100, "10.5.0.0/24", (FibNextHop(ifname="up0", encap=Seg6Encap(("fc00::5",))),
                                  FibNextHop(ifname="up1", encap=Seg6Encap(("fc00::6",))))),
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.kind.name}-{r.prefix}")
def test_encoded_route_decodes_to_same_key_signature_and_route(route):
    prepared = encode(route)
    buf = as_dump(prepared)
    key, sig, protocol = nl.parse_route(buf, 0, len(buf))
    assert protocol == nl.RTPROT_L3FAB
    assert key == prepared.key
    assert sig == prepared.sig
    back = nl.to_route(key, sig)
    assert back.prefix == route.prefix and back.kind == route.kind and back.metric == route.metric
    assert [(h.gateway, h.encap) for h in back.nexthops] == [(h.gateway, h.encap) for h in route.nexthops]


def test_model_normalises_and_refuses_nonsense():
    a = unicast(5, "2001:DB8:0::/64", FibNextHop("FE80:0::1", "up0"))
    assert a.prefix == "2001:db8::/64" and a.nexthops[0].gateway == "fe80::1"
    assert a.metric == 1024 and unreachable(5, "0.0.0.0/0").metric == 0
    b = unicast(5, "10.0.0.0/8", FibNextHop("10.0.0.9"), FibNextHop("10.0.0.1"))
    assert b == unicast(5, "10.0.0.0/8", FibNextHop("10.0.0.1"), FibNextHop("10.0.0.9"))
    with pytest.raises(ValueError, match="prefix"):
        unicast(5, "10.0.0.1/8", FibNextHop("10.0.0.9"))
    with pytest.raises(ValueError, match="link-local"):
        FibNextHop("fe80::1")
    with pytest.raises(ValueError, match="next hops"):
        FibRoute(5, "10.0.0.0/8", (), RouteKind.UNICAST)
    with pytest.raises(ValueError, match="table"):
        unreachable(255, "0.0.0.0/0")
    with pytest.raises(ValueError, match="segs"):
        Seg6Encap(("10.0.0.1",))


def test_seg6_encap_red_is_iproute2s_srh():
    """mode encap.red, one segment: hdrlen 2, type 4, segments_left 0, first_segment 0 (iproute2 6.1)."""
    raw = nl.seg6_srh(Seg6Encap(("fc00::1",)))
    mode, nexthdr, hdrlen, typ, left, first, flags, tag = struct.unpack_from("=iBBBBBBH", raw)
    assert (mode, nexthdr, hdrlen, typ, left, first, flags, tag) == (3, 0, 2, 4, 0, 0, 0, 0)
    assert raw[12:] == socket.inet_pton(socket.AF_INET6, "fc00::1")
    # several segments: iproute2 stores them last-first
    raw = nl.seg6_srh(Seg6Encap(("fc00::1", "fc00::2"), mode=1))
    assert raw[12:28] == socket.inet_pton(socket.AF_INET6, "fc00::2")
    assert nl.seg6_segments(nl.rtattr(nl.SEG6_IPTUNNEL_SRH, raw)) == (1, ("fc00::1", "fc00::2"))


def test_ipv4_route_via_ipv6_gateway_uses_rta_via():
    body = encode(ROUTES[1]).body
    via = nl.rtattr(nl.RTA_VIA, struct.pack("=H", socket.AF_INET6)
                    + socket.inet_pton(socket.AF_INET6, "fe80::2"))
    assert via in body and nl.RTATTR.pack(8, nl.RTA_GATEWAY) not in body


def test_delete_names_our_protocol_and_any_scope():
    msg = nl.delroute((100, socket.AF_INET, bytes([10, 0, 0, 1]), 32, 0), 9)
    _len, mtype, flags, seq, _pid = nl.NLMSGHDR.unpack_from(msg)
    assert (mtype, seq) == (nl.RTM_DELROUTE, 9) and flags & nl.NLM_F_ACK
    assert msg[21] == nl.RTPROT_L3FAB and msg[22] == nl.RT_SCOPE_NOWHERE


def test_gateway_without_device_accepts_the_kernels_choice():
    want = encode(unicast(1, "10.9.0.0/16", FibNextHop("10.0.0.2"))).sig
    have = encode(unicast(1, "10.9.0.0/16", FibNextHop("10.0.0.2", "up1"))).sig
    other = encode(unicast(1, "10.9.0.0/16", FibNextHop("10.0.0.3", "up1"))).sig
    assert want != have and nl.sig_matches(want, have) and not nl.sig_matches(want, other)


# -- diff ------------------------------------------------------------------------

P1, P2, P3 = (1, 2, b"\x0a\0\0\x01", 32), (1, 2, b"\x0a\0\0\x02", 32), (1, 2, b"\x0a\0\0\x03", 32)
S_A, S_B = (1, ((0, b"", 7, 1, False, None),)), (1, ((0, b"", 8, 1, False, None),))


def test_diff_adds_replaces_and_leaves_correct_routes():
    plan = diff({P1: (0, S_A), P2: (0, S_B)}, {P1: {0: S_A}, P2: {0: S_A}}, prune=False)
    assert (plan.add, plan.replace, plan.delete) == ([], [(P2, 0)], [])
    plan = diff({P1: (0, S_A)}, {}, prune=False)
    assert plan.add == [(P1, 0)] and len(plan) == 1


def test_diff_deletes_stale_routes_only_when_pruning():
    desired, actual = {P1: (0, S_A)}, {P1: {0: S_A}, P3: {0: S_A}}
    assert len(diff(desired, actual, prune=False)) == 0
    assert diff(desired, actual, prune=True).delete == [(P3, 0)]


def test_diff_metric_change_is_add_then_delete_even_before_convergence():
    plan = diff({P1: (20, S_A)}, {P1: {10: S_A}}, prune=False)
    assert (plan.add, plan.delete) == ([(P1, 20)], [(P1, 10)])
    plan = diff({P1: (20, S_A)}, {P1: {10: S_A, 20: S_A}}, prune=False)
    assert (plan.add, plan.replace, plan.delete) == ([], [], [(P1, 10)])


# -- the kernel side, with a fake socket ---------------------------------------------

class FakeNetlink:
    """Acks every message; ``fail`` maps a destination byte to errnos returned in turn."""

    def __init__(self, fail: dict[int, list[int]] | None = None, drop_acks_once: bool = False):
        self.fail = fail or {}
        self.queue: list[bytes] = []
        self.sent: list[tuple[int, int]] = []  # (type, last dst byte)
        self.drop_acks_once = drop_acks_once

    def send(self, data: bytes) -> int:
        acks = []
        for off, mlen, mtype, _flags, seq in nl.iter_messages(data):
            dst = data[off + 28 + 4 + 3]  # RTA_DST is the first attribute; last IPv4 byte
            self.sent.append((mtype, dst))
            errs = self.fail.get(dst)
            code = errs.pop(0) if errs else 0
            acks.append(nl.ERRHDR.pack(36, nl.NLMSG_ERROR, 0, seq, 0, -code)
                        + nl.NLMSGHDR.pack(mlen, mtype, 0, seq, 0))
        if self.drop_acks_once:
            self.drop_acks_once = False
            self.queue.append(OSError(errno.ENOBUFS, "No buffer space available"))
        else:
            self.queue.append(b"".join(acks))
        return len(data)

    def recv_into(self, buf: bytearray, nbytes: int = 0) -> int:
        item = self.queue.pop(0)
        if isinstance(item, OSError):
            raise item
        buf[:len(item)] = item
        return len(item)

    def close(self) -> None:
        pass


def _ops(n: int, action: str = "add") -> list:
    ops = []
    for i in range(1, n + 1):
        p = encode(unicast(100, f"10.0.0.{i}/32", FibNextHop(ifname="up0")))
        ops.append((action, p.key[:4], p.key[4], p.body, p.sig))
    return ops


def test_enomem_is_retried_until_the_route_is_in():
    sock = FakeNetlink(fail={2: [errno.ENOMEM, errno.ENOMEM], 3: [errno.ENOBUFS]})
    pauses = []
    kernel = KernelFib(sock=sock, chunk_messages=2, sleep=pauses.append)
    outcome = kernel.apply(_ops(4))
    assert sorted(op[1][2][3] for op in outcome.done) == [1, 2, 3, 4]
    assert not outcome.failed and not outcome.uncertain
    assert outcome.retries == 2 and pauses == [0.001, 0.002]
    assert [dst for _t, dst in sock.sent] == [1, 2, 3, 4, 2, 3, 2]


def test_permanent_errors_are_reported_per_route_and_delete_of_missing_is_fine():
    sock = FakeNetlink(fail={1: [errno.EEXIST], 2: [errno.ESRCH]})
    kernel = KernelFib(sock=sock, sleep=lambda s: None)
    outcome = kernel.apply(_ops(1) + _ops(2, "delete")[1:])
    assert [(e.op[0], e.errno) for e in outcome.failed] == [("add", errno.EEXIST)]
    assert "10.0.0.1/32 table 100" in str(outcome.failed[0])
    assert [op[0] for op in outcome.done] == ["delete"]


def test_enomem_that_never_clears_fails_loudly():
    sock = FakeNetlink(fail={1: [errno.ENOMEM] * 1000})
    outcome = KernelFib(sock=sock, sleep=lambda s: None).apply(_ops(1))
    assert [e.errno for e in outcome.failed] == [errno.ENOMEM] and not outcome.done


def test_lost_acks_are_uncertain_not_done():
    sock = FakeNetlink(drop_acks_once=True)
    outcome = KernelFib(sock=sock, sleep=lambda s: None).apply(_ops(3))
    assert len(outcome.uncertain) == 3 and not outcome.done and not outcome.failed


# -- Fib with a fake kernel --------------------------------------------------------------

class FakeKernel(KernelFib):
    """A KernelFib whose 'kernel' is a dict; records every op applied."""

    def __init__(self, routes=None):
        super().__init__(sock=FakeNetlink(), sleep=lambda s: None)
        self.routes: dict = dict(routes or {})
        self.applied: list = []
        self.ifindex = IFINDEX
        self.encoder = nl.Encoder(IFINDEX, self.protocol)

    def dump(self, tables=None, families=()):
        return {k: s for k, s in self.routes.items() if tables is None or k[0] in tables}

    def apply(self, ops):
        from l3fab.fib.kernel import ApplyOutcome
        self.applied.extend((op[0], f"{socket.inet_ntop(op[1][1], op[1][2])}/{op[1][3]}")
                            for op in ops)
        for action, pid, metric, _body, sig in ops:
            if action == "delete":
                self.routes.pop(pid + (metric,), None)
            else:
                self.routes[pid + (metric,)] = sig
        return ApplyOutcome(done=list(ops))


def test_fib_restart_keeps_right_routes_and_prunes_only_after_convergence():
    a = seg6_route(100, "10.0.0.1/32", "fc00::1", ifname="up0")
    b = seg6_route(100, "10.0.0.2/32", "fc00::2", ifname="up0")
    stale = seg6_route(100, "10.0.0.3/32", "fc00::3", ifname="up0")
    pa, pb, ps = encode(a), encode(b), encode(stale)
    kernel = FakeKernel({pa.key: pa.sig, ps.key: ps.sig, pb.key: encode(
        seg6_route(100, "10.0.0.2/32", "fc00::99", ifname="up0")).sig})
    fib = Fib(kernel)
    with fib.batch() as result:
        fib.update(a)
        fib.update(b)
    assert kernel.applied == [("replace", "10.0.0.2/32")]
    assert (result.value.replaced, result.value.added, result.value.deleted) == (1, 0, 0)
    assert ps.key in kernel.routes  # stale, but the RIB has not converged
    fib.remove(100, "10.0.0.1/32")
    assert pa.key in kernel.routes
    res = fib.converged()
    assert res.deleted == 2 and set(kernel.routes) == {pb.key}
    fib.remove(100, "10.0.0.2/32")  # after convergence, withdrawals delete at once
    assert kernel.routes == {}


def test_set_desired_replaces_a_table_and_refuses_foreign_tables():
    kernel = FakeKernel()
    fib = Fib(kernel, tables=[100])
    fib.converged()
    r1 = unicast(100, "10.0.0.0/24", FibNextHop(ifname="up0"))
    r2 = unicast(100, "10.0.1.0/24", FibNextHop(ifname="up0"))
    assert fib.set_desired(100, [r1, r2]).added == 2
    res = fib.set_desired(100, {r2.prefix: r2})
    assert (res.added, res.deleted) == (0, 1) and fib.desired(100) == {r2.prefix: r2}
    with pytest.raises(ValueError, match="table 200"):
        fib.update(unicast(200, "10.0.0.0/24", FibNextHop(ifname="up0")))
    with pytest.raises(ValueError, match="is for table 100"):
        Fib(FakeKernel()).set_desired(101, [r1])
