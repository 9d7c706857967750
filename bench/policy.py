"""Policy evaluation speed: ``python -m l3fab.bench.policy [--paths N]``.

Evaluates the 3-term policy of docs/policy.md (the issue's example) on N received
paths, half IPv6 unicast and half VPN, and compares the compiled prefix-list lookup
with the obvious alternative, a linear scan of ``ipaddress`` networks, on the same
prefixes.  Prints a Markdown table; CPU seconds, best of three runs each.
"""
from __future__ import annotations

import argparse
import time

from l3fab.speaker.policy import EvalContext, PrefixEntry, PrefixList, parse_policy_config
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.wire.attributes import AsPath, Communities, ExtendedCommunities, MpNextHop, Origin
from l3fab.speaker.wire.constants import IPV6_UNICAST, VPNV4
from l3fab.speaker.wire.extcommunity import route_target
from l3fab.speaker.wire.nlri import Prefix, VpnPrefix
from l3fab.speaker.wire.rd import RouteDistinguisher

POLICY = {
    "prefix-lists": {"host11-locator": ["2001:db8:0:11::/64", {"prefix": "10.0.0.0/8", "ge": 24, "le": 32}]},
    "policies": {"from-host11": {"default": "reject", "terms": [
        {"name": "locator", "match": {"family": "ipv6", "prefix-list": "host11-locator"}, "action": "accept"},
        {"name": "vpn-sid-in-locator", "match": {"family": ["vpnv4", "vpnv6"], "next-hop-in": "host11-locator"},
         "set": {"local-pref": 200, "communities": {"add": ["65000:11"]}}, "action": "accept"},
        {"name": "tag-and-continue", "match": {"community": ["65000:666"]}, "set": {"med": 50}, "action": "next"},
    ]}},
}


def make_paths(n: int, tag_every: int = 1) -> list[Path]:
    """Half IPv6 unicast, half VPNv4 (3 in 4 with a next hop in host11's locator); one
    path in ``tag_every`` carries 65000:666, which the third term matches."""
    src = Source("host11", "fe80::11", asn=65011)
    rt = ExtendedCommunities((route_target("65000:100"),))
    plain = (Origin(0), AsPath.sequence(65011))
    tagged = plain + (Communities((0xFDE8029A,)),)
    rd = RouteDistinguisher.parse("65000:100")
    out = []
    for i in range(n):
        base = tagged if i % tag_every == 0 else plain
        if i % 2:
            pfx = Prefix(2, 64, (0x20010DB8_0000_0000 + (i % 64)).to_bytes(8, "big") + bytes(8))
            out.append(Path(IPV6_UNICAST, pfx, MpNextHop("fe80::11"), base, source=src))
        else:
            pfx = Prefix(1, 24, (0x0A000000 + (i << 8)).to_bytes(4, "big"))
            nh = MpNextHop("2001:db8:0:11::100" if i % 4 else "2001:db8:0:12::100")
            out.append(Path(VPNV4, VpnPrefix(rd, pfx), nh, base + (rt,), labels=(16,), source=src))
    return out


def best_of(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def naive_matches(nets: list, prefix: Prefix) -> bool:
    """The alternative: scan ``(network, ge, le)`` with ipaddress, as a first version would."""
    net = prefix.network
    for n, ge, le in nets:
        if n.version == net.version and net.subnet_of(n) and ge <= prefix.length <= le:
            return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=100_000)
    args = ap.parse_args()
    policy = parse_policy_config(POLICY).policies["from-host11"]
    ctx = EvalContext(local_as=65100)
    rows = []
    for tag_every, what in ((1, "every path tagged"), (10, "1 in 10 tagged")):
        paths = make_paths(args.paths, tag_every)
        results = [policy.evaluate(p, ctx) for p in paths]
        accepted = sum(r.accepted for r in results)
        modified = sum(r.path is not p for r, p in zip(results, paths))
        rows.append((f"3-term policy, {what}: {accepted:,} accepted, {modified:,} modified", args.paths,
                     best_of(lambda paths=paths: [policy.evaluate(p, ctx) for p in paths])))

    prefixes = [p.prefix for p in paths]
    for size in (2, 1000):
        entries = tuple(PrefixEntry(Prefix(1, 24, (0xC0000000 + (k << 8)).to_bytes(4, "big")), 24, 32)
                        for k in range(size - 1)) + (PrefixEntry(Prefix.parse("10.0.0.0/8"), 24, 32),)
        pl = PrefixList("bench", entries)
        nets = [(e.prefix.network, e.ge, e.le) for e in entries]
        rows.append((f"prefix-list of {size}, compiled", len(prefixes),
                     best_of(lambda pl=pl: [pl.matches(p) for p in prefixes])))
        sample = prefixes[: max(1, len(prefixes) // (10 if size > 2 else 1))]
        assert [pl.matches(p) for p in sample] == [naive_matches(nets, p) for p in sample]
        rows.append((f"prefix-list of {size}, ipaddress scan", len(sample),
                     best_of(lambda nets=nets, sample=sample: [naive_matches(nets, p) for p in sample], runs=1)))

    print("| what | items | seconds | µs/item |")
    print("|---|---:|---:|---:|")
    for what, n, sec in rows:
        print(f"| {what} | {n:,} | {sec:.3f} | {sec / n * 1e6:.2f} |")


if __name__ == "__main__":
    main()
