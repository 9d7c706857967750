"""FIB without a kernel: model normalisation, netlink encoding round trips, the diff, ENOMEM retries,
routes the kernel deleted by itself, the link watch."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from l3fab.fib import FibNextHop, FibRoute, RouteKind, Seg6Encap, seg6_route, unicast, unreachable
from l3fab.fib import netlink as nl
from l3fab.fib.controller import Fib, FibResult
from l3fab.fib.kernel import KernelFib, LinkWatch, OpError
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


# -- routes the kernel deleted by itself (a link went down) ------------------------------

class StrictKernel(FakeKernel):
    """Answers as the kernel does: a replace of a missing route is ENOENT (no
    NLM_F_CREATE), a create-only add of a present one EEXIST. ``watch`` stands for
    the link watch: the answers of :meth:`changed`, in turn (then False)."""

    def __init__(self, routes=None, watch=()):
        super().__init__(routes)
        self.answers = list(watch)
        self.dumps = 0

    def changed(self):
        return self.answers.pop(0) if self.answers else False

    def dump(self, tables=None, families=()):
        self.dumps += 1
        return super().dump(tables, families)

    def apply(self, ops):
        from l3fab.fib.kernel import ApplyOutcome
        outcome = ApplyOutcome()
        for op in ops:
            action, pid, metric, _body, sig = op
            key = pid + (metric,)
            self.applied.append((action, f"{socket.inet_ntop(pid[1], pid[2])}/{pid[3]}"))
            if action == "replace" and key not in self.routes:
                outcome.failed.append(OpError(op, errno.ENOENT))
            elif action == "add" and key in self.routes:
                outcome.failed.append(OpError(op, errno.EEXIST))
            else:
                if action == "delete":
                    self.routes.pop(key, None)
                else:
                    self.routes[key] = sig
                outcome.done.append(op)
        return outcome


def _via(prefix, gateway):
    return unicast(100, prefix, FibNextHop(gateway, "up0"))


def test_a_replace_answered_enoent_adds_the_route_again():
    """The lab's case: the route went with its link, the replace found nothing."""
    old, new = _via("10.7.0.1/32", "10.0.0.2"), _via("10.7.0.1/32", "10.0.0.3")
    kernel = StrictKernel()
    fib = Fib(kernel)
    fib.update(old)
    kernel.routes.clear()  # ip link set up0 down
    result = fib.update(new)
    assert result.ok and (result.added, result.replaced) == (1, 0), result
    assert kernel.applied[-2:] == [("replace", "10.7.0.1/32"), ("add", "10.7.0.1/32")]
    assert kernel.routes == {encode(new).key: encode(new).sig}
    assert fib.update(new) == FibResult()  # and is known to be there: nothing more sent
    assert kernel.applied[-1] == ("add", "10.7.0.1/32")


def test_after_an_enoent_the_kernel_is_read_again_before_the_next_plan():
    """One vanished route means others went too: an unchanged update brings one back."""
    a, b = _via("10.7.0.1/32", "10.0.0.2"), _via("10.7.0.2/32", "10.0.0.2")
    kernel = StrictKernel()
    fib = Fib(kernel)
    fib.set_desired(100, [a, b])
    kernel.routes.clear()
    fib.update(_via("10.7.0.1/32", "10.0.0.9"))
    dumps = kernel.dumps
    result = fib.update(b)  # the same as before: the old cache said "installed, right"
    assert result.added == 1 and kernel.dumps == dumps + 1
    assert encode(b).key in kernel.routes
    assert fib.update(b).added == 0 and kernel.dumps == dumps + 1  # the cache is right again


def test_an_enoent_re_add_never_overwrites_a_route_of_another_protocol():
    """The re-add is create-only: if another daemon's route took the slot, it stays."""
    ours, theirs = _via("10.7.0.1/32", "10.0.0.2"), _via("10.7.0.1/32", "10.0.0.7")
    kernel = StrictKernel()
    fib = Fib(kernel)
    fib.update(ours)
    del kernel.routes[encode(ours).key]
    foreign = StrictKernel({encode(theirs).key: encode(theirs).sig})
    kernel.apply = _replace_then(kernel, foreign)
    result = fib.update(_via("10.7.0.1/32", "10.0.0.3"))
    assert len(result.errors) == 1 and "another protocol" in result.errors[0]
    assert foreign.routes == {encode(theirs).key: encode(theirs).sig}


def _replace_then(kernel, foreign):
    """``kernel`` answers the replace (ENOENT: ours is gone); ``foreign`` holds the slot."""
    real = kernel.apply

    def apply(ops):
        return real(ops) if ops[0][0] == "replace" else foreign.apply(ops)
    return apply


def test_repair_reads_the_kernel_only_after_a_link_or_address_change():
    a, b = _via("10.7.0.1/32", "10.0.0.2"), _via("10.7.0.2/32", "10.0.0.2")
    kernel = StrictKernel()
    fib = Fib(kernel)
    fib.set_desired(100, [a, b])
    dumps = kernel.dumps
    assert fib.repair() == FibResult() and kernel.dumps == dumps
    kernel.routes.clear()               # the link went down ...
    kernel.answers = [True]             # ... and the watch saw it
    result = fib.repair()
    assert result.added == 2 and kernel.dumps == dumps + 1
    assert fib.repair() == FibResult() and kernel.dumps == dumps + 1


def test_a_link_change_makes_the_next_update_plan_against_the_kernel():
    a = _via("10.7.0.1/32", "10.0.0.2")
    kernel = StrictKernel()
    fib = Fib(kernel)
    fib.update(a)
    kernel.routes.clear()
    kernel.answers = [True]
    assert fib.update(a).added == 1 and encode(a).key in kernel.routes


# -- the link watch -------------------------------------------------------------------------

class FakeEvents:
    """Announcements as the kernel queues them; an exception is raised in its turn."""

    def __init__(self, *items):
        self.items = list(items)

    def recv_into(self, buf, nbytes=0):
        if not self.items:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        buf[:len(item)] = item
        return len(item)

    def send(self, data):
        raise AssertionError("the watch only listens")

    def close(self):
        pass


def _link(mtype, index, flags):
    return (nl.NLMSGHDR.pack(32, mtype, 0, 0, 0)
            + struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, flags, 0))


def _addr(mtype, index):
    return (nl.NLMSGHDR.pack(24, mtype, 0, 0, 0)
            + struct.pack("=BBBBI", socket.AF_INET6, 64, 0, 0, index))


UP = nl.IFF_UP | nl.IFF_LOWER_UP | 0x40 | 0x1000  # with RUNNING, MULTICAST: not what counts


def test_link_watch_reports_the_changes_that_can_drop_or_restore_routes():
    events = FakeEvents()
    watch = LinkWatch(events)
    assert watch.changed() is False                         # nothing queued
    events.items = [_link(nl.RTM_NEWLINK, 7, UP)]
    assert watch.changed() is True                          # a link not seen before
    events.items = [_link(nl.RTM_NEWLINK, 7, UP & ~0x40)]   # flags that do not count
    assert watch.changed() is False
    events.items = [_link(nl.RTM_NEWLINK, 7, 0x1000)]       # down
    assert watch.changed() is True
    events.items = [_link(nl.RTM_NEWLINK, 7, UP)]           # up again
    assert watch.changed() is True
    events.items = [_link(nl.RTM_NEWLINK, 7, nl.IFF_UP)]    # carrier lost
    assert watch.changed() is True
    events.items = [_link(nl.RTM_DELLINK, 7, 0)]
    assert watch.changed() is True
    for mtype in (nl.RTM_NEWADDR, nl.RTM_DELADDR):
        events.items = [_addr(mtype, 8)]
        assert watch.changed() is True
    events.items = [OSError(errno.ENOBUFS, "No buffer space available")]  # announcements lost
    assert watch.changed() is True
    # several in one read, one of which counts; a truncated message is skipped
    events.items = [_link(nl.RTM_NEWLINK, 9, UP) + _link(nl.RTM_NEWLINK, 9, UP)[:20]]
    assert watch.changed() is True and watch.changed() is False
    events.items = [OSError(errno.EBADF, "Bad file descriptor")]
    with pytest.raises(OSError):
        watch.changed()


def test_kernel_fib_without_a_watch_never_reports_a_change():
    kernel = KernelFib(sock=FakeNetlink(), sleep=lambda s: None)
    assert kernel.watch is None and kernel.changed() is False
    watched = KernelFib(sock=FakeNetlink(), watch=LinkWatch(FakeEvents(_addr(nl.RTM_DELADDR, 3))))
    assert watched.changed() is True and watched.changed() is False


def test_moved_interfaces_are_found_and_routes_through_them_encoded_again():
    links = {"up0": 7, "up1": 8}

    def resolve(name):
        if name not in links:
            raise OSError(errno.ENODEV, name)
        return links[name]

    class Kernel(StrictKernel):
        def apply(self, ops):  # no route through an interface that is not there
            gone = [op for op in ops if op[0] != "delete" and _oif(op) not in links.values()]
            outcome = super().apply([op for op in ops if op not in gone])
            outcome.failed += [OpError(op, errno.ENODEV) for op in gone]
            return outcome

    kernel = Kernel()
    kernel.ifindex = KernelFib.ifindex.__get__(kernel)  # the real cache, over ``links``
    kernel._resolve = resolve
    kernel.encoder = nl.Encoder(kernel.ifindex, kernel.protocol)
    fib = Fib(kernel)
    a, b = _via("10.7.0.1/32", "fe80::2"), unicast(100, "10.7.0.2/32", FibNextHop("fe80::2", "up1"))
    fib.set_desired(100, [a, b])
    del links["up0"]                       # ip link del up0: its routes went with it
    kernel.routes = {k: s for k, s in kernel.routes.items() if s[1][0][2] != 7}
    kernel.answers = [True]
    assert len(fib.repair().errors) == 1    # cannot be encoded now: the old encoding is kept
    assert "up0" not in kernel._last         # names of interfaces that are gone are not kept
    links["up0"] = 9                        # made again, with a new index
    kernel.answers = [True]
    assert fib.repair().added == 1
    assert {s[1][0][2] for s in kernel.routes.values()} == {8, 9}
    links["up1"] = 10                       # re-created between two looks
    kernel.routes = {k: s for k, s in kernel.routes.items() if s[1][0][2] != 8}
    kernel.answers = [True]
    assert fib.repair().added == 1
    assert {s[1][0][2] for s in kernel.routes.values()} == {9, 10}
    assert kernel.moved_interfaces() == set()


def _oif(op):
    return op[4][1][0][2] if op[4] else None  # the first next hop's interface
