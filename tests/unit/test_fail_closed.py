"""Fail closed (issue 10, findings 2 and 18), without a kernel:

- the Linux backend plumbs no endpoint its nftables filter does not cover (the filter
  goes first; when nft refuses the update, new endpoints wait with nft's reason);
- trusted interfaces for the stranger guard: lo, the uplinks, interfaces with a global
  address, never an endpoint's;
- a link that stops being an endpoint loses its gateway addresses and its VRF;
- an intent change whose filter the kernel refuses is refused at the API with nft's
  reason, in one line, and undone on disk and in memory; the next change works.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from tenancy_fixtures import FakeInterfaces, new_intent, reload

from l3fab.cli.app import tenancy_api
from l3fab.cli.app.tenant_plane import TenantPlane
from l3fab.dataplane import nft
from l3fab.dataplane.intent import DataplaneSettings
from l3fab.dataplane.linux import LinuxDataplane
from l3fab.dataplane.model import DataplaneSpec, PortSpec
from l3fab.fib.worker import KernelWorker
from l3fab.tenancy.errors import IntentError

A = PortSpec("a", "blue", "tap-a", 100, ipv4="10.0.0.5")
B = PortSpec("b", "blue", "tap-b", 100, ipv4="10.0.0.6")
SPEC = DataplaneSpec(locator="2001:db8:0:1::/64", tunnel_source="2001:db8:0:1::1", ports=(A,))


class FakeIp:
    def __init__(self, links: dict[str, dict] | None = None, addresses: dict[str, list] | None = None) -> None:
        self._links = links or {}
        self._addresses = addresses or {}
        self.calls: list[str] = []

    def json(self, *args: str) -> list[dict]:
        assert args == ("addr", "show")
        return [{"ifname": name, "addr_info": [{"local": a, "prefixlen": p, "scope": s} for a, p, s in addrs]}
                for name, addrs in self._addresses.items()]

    def link(self, ifname: str) -> dict | None:
        return self._links.get(ifname)

    def addresses(self, ifname: str) -> list[tuple[str, int, str]]:
        return list(self._addresses.get(ifname, []))

    def run(self, *args: str, **_kw: Any) -> str:
        self.calls.append(" ".join(args))
        return ""


class Features:
    vrf = False


def test_endpoints_the_filter_does_not_cover_are_not_plumbed(monkeypatch: pytest.MonkeyPatch) -> None:
    dp = LinuxDataplane(ip=FakeIp(), features=Features(), fib=object(), uplinks=("up0",))
    applied: list[tuple[str, ...]] = []

    def works(spec: DataplaneSpec, **kw: Any) -> nft.ApplyResult:
        applied.append(tuple(p.name for p in spec.ports))
        return nft.ApplyResult("replaced")

    monkeypatch.setattr(nft, "apply", works)
    spec, errors = dp._filter(SPEC, SPEC)
    assert spec.ports == (A,) and errors == [] and dp.filter_error is None

    def refuses(spec: DataplaneSpec, **kw: Any) -> nft.ApplyResult:
        raise nft.NftError("nft -f -: /dev/stdin:12:3: Error: syntax error, unexpected newline")

    monkeypatch.setattr(nft, "apply", refuses)
    both = replace(SPEC, ports=(A, B))
    dp.waiting = {}
    spec, errors = dp._filter(both, both)
    assert spec.ports == (A,)  # a is in the filter still in force; b is not, so it is not plumbed
    assert errors == [dp.filter_error] == ["nftables: nft -f -: /dev/stdin:12:3: Error: syntax error, "
                                           "unexpected newline"]
    assert dp.waiting == {"b": "not plumbed: its anti-spoofing filter is not in place (nft -f -: /dev/stdin:12:3: "
                                "Error: syntax error, unexpected newline)"}
    # a changed port is a new port: the old filter holds other addresses for it
    dp.waiting = {}
    moved = replace(SPEC, ports=(replace(A, ipv4="10.0.0.9"),))
    assert dp._filter(moved, moved)[0].ports == ()
    # once nft takes the table again, everything is plumbed
    monkeypatch.setattr(nft, "apply", works)
    assert dp._filter(both, both)[0].ports == (A, B) and dp.filter_error is None


def test_a_bad_element_from_below_the_api_is_refused_by_the_filter_itself(monkeypatch) -> None:
    """Even if a bad name got past the intent (an old state file), it never reaches nft,
    and the endpoints already filtered stay plumbed."""
    ip = FakeIp()
    dp = LinuxDataplane(ip=ip, features=Features(), fib=object())
    monkeypatch.setattr(nft, "is_installed", lambda **kw: False)
    runs: list[str] = []
    monkeypatch.setattr(nft, "_run", lambda args, **kw: runs.append(kw.get("input") or "") or "")
    dp.filtered = frozenset({dp._covers(A)})
    bad = replace(SPEC, ports=(A, replace(B, name="web2\n")))
    spec, errors = dp._filter(bad, bad)
    assert spec.ports == (A,) and runs == []
    assert errors == ["nftables: ports.name: 'web2\\n' is not an endpoint name (letters, digits, '_', '.', '-'; "
                      "up to 63, first a letter or digit)"]


def test_trusted_interfaces_are_lo_uplinks_and_host_networks_never_endpoints() -> None:
    ip = FakeIp(addresses={
        "lo": [("127.0.0.1", 8, "host"), ("10.255.2.1", 32, "global"), ("::1", 128, "host")],
        "up0": [("fe80::5", 64, "link")],                      # unnumbered uplink: trusted by name
        "eth1": [("192.0.2.2", 31, "global")],                 # numbered uplink / management
        "tap-a": [("169.254.0.1", 32, "link"), ("fe80::1", 64, "link")],  # an endpoint
        "tap-old": [("169.254.0.1", 32, "link")],              # removed before a restart: a stranger
        "tap-b": [("198.51.100.9", 32, "global")],             # an endpoint, whatever it carries
        "we*ird": [("203.0.113.1", 32, "global")],             # nft cannot name it: a stranger
    })
    dp = LinuxDataplane(ip=ip, features=Features(), fib=object(), uplinks=("up0", "up1"))
    guard = dp.guard(replace(SPEC, ports=(A, B)))
    assert guard.trusted == ("eth1", "lo", "up0", "up1")
    assert guard.host_addresses == ("10.255.2.1", "192.0.2.2", "198.51.100.9", "203.0.113.1")


def test_a_link_that_is_no_longer_an_endpoint_keeps_nothing_that_forwards() -> None:
    ip = FakeIp(links={"tap-a": {"ifname": "tap-a", "master": "l3v-100"}, "tap-c": {"ifname": "tap-c"}},
                addresses={"tap-a": [("169.254.0.1", 32, "link"), ("fe80::1", 64, "link"), ("10.9.9.9", 24, "x")],
                           "tap-c": [("169.254.0.1", 32, "link")]})
    dp = LinuxDataplane(ip=ip, features=Features(), fib=object())

    class Plan:
        addresses = {"lo": (), "tap-c": ()}

    dp.gateway_links = {"tap-a", "tap-c", "tap-gone"}
    assert dp._release(SPEC, Plan()) == []
    assert ip.calls == ["addr del 169.254.0.1/32 dev tap-a", "-6 addr del fe80::1/64 dev tap-a",
                        "link set dev tap-a nomaster"]
    assert dp.gateway_links == {"tap-c"}  # released once; a vanished link is forgotten


# ---------------------------------------------------------------- the API undoes a refused change


class FakeDataplane:
    """Refuses the filter whenever an endpoint on ``bad`` is in the spec (as nft would)."""

    use_nft, use_tc = True, False

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.filter_error: str | None = None
        self.waiting: dict[str, str] = {}
        self.applied: list[tuple[str, ...]] = []

    def apply(self, spec: DataplaneSpec) -> list[str]:
        self.applied.append(tuple(p.name for p in spec.ports))
        refused = any(p.ifname == self.bad for p in spec.ports)
        self.filter_error = "nftables: nft -f -: /dev/stdin:9:1: Error: Could not process rule" if refused else None
        return [self.filter_error] if self.filter_error else []

    def replace_remote(self, routes) -> list[str]:
        return []


class FakeSpeaker:
    def __init__(self) -> None:
        self.groups: list[list[str]] = []

    def set_origin_group(self, group: str, routes) -> None:
        self.groups.append(sorted(str(getattr(r.nlri, "prefix", r.nlri)) for r in routes))


def test_a_change_the_kernel_refuses_is_refused_and_undone(tmp_path) -> None:
    intent = new_intent(tmp_path, interfaces=FakeInterfaces("tap0", "tap1", "tap-bad"))
    dp = FakeDataplane(bad="tap-bad")
    worker = KernelWorker()
    plane = TenantPlane(intent, DataplaneSettings(), dp, worker)  # type: ignore[arg-type]
    speaker = FakeSpeaker()
    handlers = tenancy_api.tenancy_handlers(plane, speaker)  # type: ignore[arg-type]

    async def main() -> None:
        await handlers["tenant_create"]({"name": "blue", "vni": 100})
        await handlers["endpoint_add"]({"name": "web1", "tenant": "blue", "interface": "tap0", "ipv4": "10.0.0.5"})
        before_state, before_disk = intent.state, intent.path.read_bytes()
        with pytest.raises(IntentError) as err:
            await handlers["endpoint_add"]({"name": "web2", "tenant": "blue", "interface": "tap-bad",
                                            "ipv4": "10.0.0.6"})
        assert str(err.value) == ("endpoints[web2]: refused, the change is not kept: nftables: nft -f -: "
                                  "/dev/stdin:9:1: Error: Could not process rule")
        assert intent.state is before_state and intent.path.read_bytes() == before_disk
        assert [e.name for e in reload(intent).endpoints()] == ["web1"]
        assert dp.applied[-2:] == [("web1", "web2"), ("web1",)]  # tried, then the old intent again
        assert dp.filter_error is None
        assert "10.0.0.6/32" not in speaker.groups[-1] and "10.0.0.5/32" in speaker.groups[-1]
        # the next endpoint is taken as usual
        out = await handlers["endpoint_add"]({"name": "web3", "tenant": "blue", "interface": "tap1",
                                              "ipv4": "10.0.0.7"})
        assert out["name"] == "web3" and "10.0.0.7/32" in speaker.groups[-1]
        # a bad name never gets as far as the dataplane
        tries = len(dp.applied)
        with pytest.raises(IntentError, match=r"^endpoint\.name: 'web2\\n' contains a control"):
            await handlers["endpoint_add"]({"name": "web2\n", "tenant": "blue", "interface": "tap1",
                                            "ipv4": "10.0.0.8"})
        assert len(dp.applied) == tries

    try:
        asyncio.run(main())
    finally:
        worker.close()


def test_the_dataplane_checks_a_state_before_it_is_stored(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intent's check hook runs the filter's own checks (here: one made stricter)."""
    intent = new_intent(tmp_path, interfaces=FakeInterfaces("tap0"))
    plane = TenantPlane(intent, DataplaneSettings(), None)
    intent.create_tenant("blue", 100)
    monkeypatch.setattr(nft, "_matches", lambda pattern, v: isinstance(v, str) and v != "tap0")
    before = intent.path.read_bytes()
    with pytest.raises(IntentError, match=r"^dataplane: ports\[web1\]\.ifname: 'tap0' is not an interface name"):
        intent.add_endpoint("web1", "blue", "tap0", ipv4="10.0.0.5")
    assert intent.path.read_bytes() == before and plane.intent.endpoints() == ()
    plane.worker.close()
