"""l3fab as an RFC 4456 route reflector between iBGP raw peers."""
from __future__ import annotations

from l3fab.speaker.wire import AsPath, NextHop, Origin, Prefix, Update
from l3fab.speaker.wire.attributes import ClusterList, LocalPref, OriginatorId

from .rawpeer import RawPeer, wait


def _collect(peer: RawPeer, want: int, timeout: float = 5.0) -> dict:
    got: dict = {}

    def more():
        try:
            upd = peer.expect(Update, timeout=0.3)
        except TimeoutError:
            return len(got) >= want
        for _fam, _nh, nlri in upd.reachable():
            for n in nlri:
                got[str(n)] = upd
        return len(got) >= want

    wait(more, timeout)
    return got


def test_reflection_sets_originator_and_cluster_list(daemon_factory):
    neighbors = [
        {"name": name, "address": addr, "remote-as": 65001, "passive": True, "families": ["ipv4"],
         "route-reflector-client": client}
        for name, addr, client in (("c1", "127.0.0.2", True), ("c2", "127.0.0.3", True),
                                   ("n1", "127.0.0.4", False), ("n2", "127.0.0.5", False))]
    d = daemon_factory({"router-id": "10.0.0.1", "asn": 65001, "role": "route-reflector",
                        "cluster-id": "10.0.0.100", "listen": {"addresses": ["127.0.0.1"], "port": 0},
                        "neighbors": neighbors})
    port = d.status["listen_port"]
    peers = {name: RawPeer(port, asn=65001, router_id=rid, source=addr)
             for name, rid, addr in (("c1", "10.0.0.2", "127.0.0.2"), ("c2", "10.0.0.3", "127.0.0.3"),
                                     ("n1", "10.0.0.4", "127.0.0.4"), ("n2", "10.0.0.5", "127.0.0.5"))}
    wait(lambda: all(n["state"] == "Established" for n in d.api("neighbors")))

    attrs = (Origin(0), AsPath(), LocalPref(100))
    peers["c1"].send(Update(attributes=attrs + (NextHop("192.0.2.2"),), nlri=(Prefix.parse("10.1.0.0/24"),)).encode())
    peers["n1"].send(Update(attributes=attrs + (NextHop("192.0.2.4"),), nlri=(Prefix.parse("10.4.0.0/24"),)).encode())

    # a client's route goes to every other iBGP peer, with ORIGINATOR_ID and CLUSTER_LIST
    for name in ("c2", "n1", "n2"):
        got = _collect(peers[name], 1 if name != "c2" else 2)
        upd = got["10.1.0.0/24"]
        assert upd.get(OriginatorId).originator == "10.0.0.2"
        assert upd.get(ClusterList).cluster_ids == ("10.0.0.100",)
        assert upd.get(NextHop).address == "192.0.2.2"   # iBGP: next hop unchanged
        if name == "c2":  # a non-client's route reaches clients only
            assert got["10.4.0.0/24"].get(OriginatorId).originator == "10.0.0.4"
    adv_n2 = {r["prefix"] for r in d.api("rib_advertised", neighbor="n2")}
    assert adv_n2 == {"10.1.0.0/24"}, adv_n2  # not n1's route: non-client to non-client

    # a route that carries our cluster id comes back as a loop and is refused
    looped = attrs + (NextHop("192.0.2.9"), OriginatorId("10.0.0.9"), ClusterList(("10.0.0.100",)))
    peers["n2"].send(Update(attributes=looped, nlri=(Prefix.parse("10.9.0.0/24"),)).encode())
    peers["n2"].send(Update(attributes=attrs + (NextHop("192.0.2.5"),), nlri=(Prefix.parse("10.5.0.0/24"),)).encode())
    wait(lambda: d.api("rib_received", neighbor="n2"))
    assert [r["prefix"] for r in d.api("rib_received", neighbor="n2")] == ["10.5.0.0/24"]
