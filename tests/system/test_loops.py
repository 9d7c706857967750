"""AS-path loop prevention on a running speaker, and allowas-in."""
from __future__ import annotations

import pytest

from l3fab.speaker.wire import AsPath, NextHop, Origin, Prefix, Update

from .rawpeer import RawPeer, wait


@pytest.mark.parametrize("allowas_in, accepted", [(0, False), (1, True)])
def test_own_as_in_path(daemon_factory, allowas_in, accepted):
    d = daemon_factory({"router-id": "10.0.0.1", "asn": 65001, "listen": {"addresses": ["127.0.0.1"], "port": 0},
                        "neighbors": [{"name": "p", "address": "127.0.0.1", "remote-as": 65002, "passive": True,
                                       "families": ["ipv4"], "allowas-in": allowas_in}]})
    peer = RawPeer(d.status["listen_port"])
    wait(lambda: d.api("neighbor", neighbor="p")["state"] == "Established")
    looped = (Origin(0), AsPath.sequence(65002, 65001, 65003), NextHop("192.0.2.2"))
    peer.send(Update(attributes=looped, nlri=(Prefix.parse("10.7.0.0/24"),)).encode())
    clean = (Origin(0), AsPath.sequence(65002, 65003), NextHop("192.0.2.2"))
    peer.send(Update(attributes=clean, nlri=(Prefix.parse("10.8.0.0/24"),)).encode())
    wait(lambda: any(r["prefix"] == "10.8.0.0/24" for r in d.api("rib_received", neighbor="p")))
    got = {r["prefix"] for r in d.api("rib_received", neighbor="p")}
    assert ("10.7.0.0/24" in got) is accepted, got
