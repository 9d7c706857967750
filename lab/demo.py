"""The l3fab interop demo: two l3fab hosts behind a real FRR leaf (the SONiC stand-in).

    host1 (l3fab) --unnumbered eBGP-- leaf1 (FRR 8.4) --unnumbered eBGP-- host2 (l3fab)

host1 announces its locator in IPv6 unicast and a tenant endpoint's /32 and /128
as VPN routes whose next hop is the endpoint's SID.  FRR carries them with
``attribute-unchanged next-hop``; host2 receives them with SID, RD, route target
and label intact.  The demo prints what an operator would type and see, then
removes every namespace and process it created.

Run as root:  ``make demo``  (or ``.venv/bin/python -m lab.demo``)
"""
from __future__ import annotations

import os
import sys
import time

from lab.netns import Lab, wait_until
from lab.peers.frr import FrrRouter
from lab.peers.l3fab import L3fabNode

LEAF_CONFIG = """
    router bgp 65100
     bgp router-id 10.255.0.1
     no bgp ebgp-requires-policy
     no bgp default ipv4-unicast
     neighbor h1 interface remote-as external
     neighbor h2 interface remote-as external
     address-family ipv6 unicast
      neighbor h1 activate
      neighbor h2 activate
     exit-address-family
     address-family ipv4 vpn
      neighbor h1 activate
      neighbor h1 attribute-unchanged next-hop
      neighbor h2 activate
      neighbor h2 attribute-unchanged next-hop
     exit-address-family
     address-family ipv6 vpn
      neighbor h1 activate
      neighbor h1 attribute-unchanged next-hop
      neighbor h2 activate
      neighbor h2 attribute-unchanged next-hop
     exit-address-family
    !
"""


def _host(lab: Lab, ns, n: int) -> L3fabNode:
    return L3fabNode(lab, ns, {
        "router-id": f"10.0.0.{n}", "asn": 4200000000 + n, "hostname": f"host{n}",
        "neighbors": [{"name": "leaf1", "interface": "uplink", "remote-as": "external",
                       "families": ["ipv6", "vpnv4", "vpnv6"], "connect-retry": 1}],
    }, log_level="info").start()


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def show(node: L3fabNode, *args: str) -> None:
    print(f"$ l3fab {' '.join(args)}", flush=True)
    out = node.cli(*args)
    print(out.stdout, end="", flush=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces)", file=sys.stderr)
        return 2
    os.environ.setdefault("COLUMNS", "150")
    t0 = time.monotonic()
    with Lab(prefix="l3demo") as lab:
        step("building namespaces host1, leaf1, host2 with unnumbered veth links")
        h1, leaf, h2 = lab.add_namespace("host1"), lab.add_namespace("leaf1"), lab.add_namespace("host2")
        lab.link(h1, leaf, "uplink", "h1", mtu=9100)
        lab.link(h2, leaf, "uplink", "h2", mtu=9100)
        step("starting FRR 8.4 on leaf1 and l3fab on both hosts")
        frr = FrrRouter(lab, leaf).start(LEAF_CONFIG)
        host1, host2 = _host(lab, h1, 1), _host(lab, h2, 2)
        wait_until(lambda: host1.established("leaf1") and host2.established("leaf1"), 60,
                   what="both hosts Established with leaf1")
        print(f"sessions up after {time.monotonic() - t0:.1f} s")
        show(host1, "show", "neighbors")

        step("host1 announces its locator and tenant 'blue' endpoint vm1 (VNI 100)")
        sid = "2001:db8:0:1::100"
        host1.announce(
            {"prefix": "2001:db8:0:1::/64"},
            {"prefix": "192.168.10.5/32", "rd": "10.0.0.1:100", "route_targets": ["65000:100"],
             "labels": [100], "next_hop": sid},
            {"prefix": "fd00:10::5/128", "rd": "10.0.0.1:100", "route_targets": ["65000:100"],
             "labels": [100], "next_hop": sid},
        )
        wait_until(lambda: len(host2.received("leaf1")) >= 3, 30, what="host1's routes at host2")
        show(host2, "show", "rib", "received", "leaf1")
        print("$ vtysh -c 'show bgp ipv4 vpn'   (on leaf1)")
        print(frr.vtysh("show bgp ipv4 vpn"))

        got = {r["prefix"]: r for r in host2.received("leaf1")}
        ok = (got["192.168.10.5/32"]["next_hop"] == sid and got["fd00:10::5/128"]["next_hop"] == sid
              and got["192.168.10.5/32"]["ext_communities"] == ["target:65000:100"])
        step("host1 removes the endpoint; the withdrawal crosses the leaf")
        host1.withdraw({"prefix": "192.168.10.5/32", "rd": "10.0.0.1:100"},
                       {"prefix": "fd00:10::5/128", "rd": "10.0.0.1:100"})
        wait_until(lambda: len(host2.received("leaf1")) == 1, 30, what="withdrawal at host2")
        show(host2, "show", "rib", "received", "leaf1")
        print(f"\nSID, RD, route target and label arrived unchanged: {'yes' if ok else 'NO'}")
        print(f"demo finished in {time.monotonic() - t0:.1f} s; cleaning up namespaces and processes")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
