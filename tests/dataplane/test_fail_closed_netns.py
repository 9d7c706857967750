"""One endpoint's bad nft element never disables the filter for the others (issue 10,
finding 2), with a real daemon, real nftables and real packets.

On 785e02a ``endpoint add`` with the name ``"web2\\n"`` was accepted and saved; every
nftables update failed from then on (``syntax error, unexpected newline``), the table
stayed frozen, and the next endpoint added got no anti-spoofing: a forged source from
it reached the other endpoint while ``show endpoints`` said "plumbed".

Here, on one l3fab host ``h`` with endpoints in tenant X on ``vm-x1``, ``vm-x2`` and
``vm-x3``:

1. ``"web2\\n"`` is refused in one line through the raw API and the CLI, nothing saved;
2. an endpoint whose element nft refuses (an nft wrapper refuses every table naming
   ``vm-x3``, standing in for any element the kernel will not take) is refused at the
   API with nft's reason and not kept; ``vm-x3`` is not plumbed and cannot reach the
   tenant;
3. the next endpoint (``x2``) gets its anti-spoofing: a forged source from it is
   dropped and counted, while its own address reaches ``x1``.

Arrival is counted in ``x1`` (an nft counter in its input hook).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from l3fab.dataplane import nft
from l3fab.lab.netns import Lab, Namespace
from l3fab.lab.peers.l3fab import REPO, L3fabNode
from l3fab.lab.tenant_fabric import configure_guest
from l3fab.speaker.api import ApiClientError

pytestmark = pytest.mark.timeout(300)

X1, X2, X3, FORGED = "10.7.0.1", "10.7.0.2", "10.7.0.3", "10.7.0.99"
COUNT = 3
REFUSING_NFT = """#!/bin/sh
# nft, except that a table naming interface "vm-x3" is refused as the kernel would refuse an element
case " $* " in
  *" -f "*)
    input=$(cat)
    case "$input" in
      *'"vm-x3"'*) echo "/dev/stdin:42:3-9: Error: Could not process rule: element refused for vm-x3" >&2; exit 1;;
    esac
    printf '%s\\n' "$input" | exec {real} "$@";;
esac
exec {real} "$@"
"""


class Node(L3fabNode):
    """An l3fab whose PATH finds the refusing nft first."""

    def __init__(self, *args, bin_dir: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bin_dir = bin_dir

    def start(self, timeout: float = 15.0) -> "Node":
        import yaml

        from l3fab.lab.netns import wait_until

        self.config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        argv = [sys.executable, "-m", "l3fab.cli.main", "run", "--config", str(self.config_file),
                "--log-level", self.log_level]
        env = {**os.environ, "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}"}
        self.process = self.lab.popen(self.ns, argv, name=self.name, cwd=REPO, env=env)
        wait_until(self._api_up, timeout, 0.05, what=f"l3fab {self.ns.name}: API socket")
        return self


def received(ns: Namespace) -> int:
    listing = json.loads(ns.run(["nft", "-j", "list", "table", "inet", "probe"]).stdout)
    return next(int(e["counter"]["packets"]) for item in listing["nftables"]
                for e in item.get("rule", {}).get("expr", []) if "counter" in e)


@pytest.fixture
def host(lab: Lab):
    h = lab.add_namespace("h")
    guests = {}
    for name, addr in (("x1", X1), ("x2", X2), ("x3", X3)):
        ns = guests[name] = lab.add_namespace(name, forwarding=False)
        lab.link(h, ns, f"vm-{name}", "eth0")
        configure_guest(ns, "eth0", addr, None)
    guests["x2"].ip("addr", "add", f"{FORGED}/32", "dev", "eth0")  # the forged source x2 will use
    # count in x1 what arrives from x2's address, the forged one and x3's
    guests["x1"].run(["nft", "-f", "-"], input=(
        "table inet probe {\n chain c {\n  type filter hook input priority 10; policy accept;\n"
        f"  ip saddr {{ {X2}, {FORGED}, {X3} }} icmp type echo-request counter\n }}\n}}\n"))
    bin_dir = lab.workdir / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "nft"
    wrapper.write_text(REFUSING_NFT.format(real=shutil.which("nft")))
    wrapper.chmod(0o755)
    cfg = {"router-id": "10.255.2.1", "asn": 4200000001,
           "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:1::/64",
                       "state-file": str(lab.workdir / "intent.json")},
           "dataplane": {"reconcile-interval": 2}}
    node = Node(lab, h, cfg, log_level="info", bin_dir=str(bin_dir)).start()
    node.api("tenant_create", name="X", vni=700)
    node.api("endpoint_add", name="x1", tenant="X", interface="vm-x1", ipv4=X1)
    return lab, h, guests, node


def ping(lab: Lab, ns: Namespace, src: str, dst: str) -> None:
    lab.run(ns, ["ping", "-n", "-q", "-c", str(COUNT), "-i", "0.2", "-W", "1", "-I", src, dst], check=False)


def saved(lab: Lab) -> list[str]:
    return sorted(e["name"] for e in json.loads((lab.workdir / "intent.json").read_text())["endpoints"])


def test_a_refused_endpoint_never_costs_the_next_one_its_anti_spoofing(host) -> None:
    lab, h, guests, node = host
    x1, x2, x3 = guests["x1"], guests["x2"], guests["x3"]

    # 1. a final newline: refused in one line, through the raw API and the CLI; nothing saved
    with pytest.raises(ApiClientError) as err:
        node.api("endpoint_add", name="web2\n", tenant="X", interface="vm-x3", ipv4=X3)
    assert err.value.bad_input and str(err.value) == (
        "endpoint.name: 'web2\\n' contains a control or non-printable character ('\\n')")
    r = subprocess.run([sys.executable, "-m", "l3fab.cli.main", "endpoint", "add", "web2\n", "--tenant", "X",
                        "--interface", "vm-x3", "--ipv4", X3, "--socket", node.socket],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "'web2\\n'" in r.stderr, r.stderr
    assert saved(lab) == ["x1"]

    # 2. an element nft refuses: the API says so with nft's reason, and the change is not kept
    with pytest.raises(ApiClientError) as err:
        node.api("endpoint_add", name="x3", tenant="X", interface="vm-x3", ipv4=X3)
    assert err.value.bad_input and str(err.value) == (
        "endpoints[x3]: refused, the change is not kept: nftables: nft -f -: /dev/stdin:42:3-9: Error: Could not "
        "process rule: element refused for vm-x3")
    assert saved(lab) == ["x1"] and [e["name"] for e in node.api("endpoint_list")] == ["x1"]
    assert "169.254.0.1" not in h.ip("addr", "show", "dev", "vm-x3").stdout  # never plumbed
    before = received(x1)
    ping(lab, x3, X3, X1)
    assert received(x1) == before, "an endpoint without its filter forwarded"

    # 3. the next endpoint is filtered: its own address passes, a forged one is dropped and counted
    node.api("endpoint_add", name="x2", tenant="X", interface="vm-x2", ipv4=X2)
    rows = {e["name"]: e for e in node.api("endpoints")}
    assert rows["x2"]["status"] == "plumbed"
    spoofed = nft.counters(netns=h.netns)["x2"]["spoofed"]["packets"]
    before = received(x1)
    ping(lab, x2, X2, X1)
    assert received(x1) - before == COUNT, "x2's own traffic does not reach x1: the topology is broken"
    before = received(x1)
    ping(lab, x2, FORGED, X1)
    assert received(x1) == before, "a forged source from the next endpoint reached x1"
    assert nft.counters(netns=h.netns)["x2"]["spoofed"]["packets"] - spoofed == COUNT
    assert node.api("dataplane")["filter_error"] is None
