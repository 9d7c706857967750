"""The l3fab side of ``python -m l3fab.bench.fib``; runs inside the bench's network namespace.

Prints one JSON object: seconds per phase and what each apply reported.
Every phase checks its own result by dumping the table again, so a lost
route makes the bench fail instead of looking fast.
"""

from __future__ import annotations

import argparse
import json
import time

from l3fab.fib import Fib, FibNextHop, FibRoute, seg6_route, unicast
from l3fab.bench.fib_routes import host_prefix, sid

GATEWAY = "10.255.0.2"  # on the bench's veth (10.255.0.1/24)


def plain_routes(table: int, n: int, dev: str, offset: int = 0,
                 gateway: str | None = None) -> list[FibRoute]:
    hop = FibNextHop(gateway=gateway, ifname=dev)
    return [unicast(table, host_prefix(i + offset), hop) for i in range(n)]


def seg6_routes(table: int, n: int, dev: str, sid_base: int = 0) -> list[FibRoute]:
    return [seg6_route(table, host_prefix(i), sid(i + sid_base), ifname=dev) for i in range(n)]


def _count(fib: Fib, table: int) -> int:
    return sum(1 for key in fib.kernel.dump([table]) if key[0] == table)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def install_remove(table: int, routes: list[FibRoute]) -> dict:
    fib = Fib(tables=[table])
    fib.converged()  # an empty start: removals are applied at once
    add_s, added = _timed(lambda: fib.set_desired(table, routes))
    installed = _count(fib, table)
    del_s, deleted = _timed(lambda: fib.set_desired(table, []))
    left = _count(fib, table)
    fib.close()
    return {"add_s": add_s, "del_s": del_s, "added": added.added, "deleted": deleted.deleted,
            "installed": installed, "left": left,
            "retries": added.retries + deleted.retries,
            "errors": list(added.errors + deleted.errors)[:5]}


def reconcile(table: int, n: int, dev: str) -> dict:
    """A restart: 100 % installed by one Fib, a new Fib wants a table that differs in 1 %."""
    routes = plain_routes(table, n, dev)
    first = Fib(tables=[table])
    first.set_desired(table, routes)
    first.close()
    changed = n // 100
    # 1 %: a half gets a gateway (replace), a quarter is new (add), a quarter is gone (delete).
    wanted = plain_routes(table, changed // 2, dev, gateway=GATEWAY) + routes[changed // 2:]
    gone = changed // 4
    wanted = wanted[:n - gone] + plain_routes(table, changed - changed // 2 - gone, dev, 2 * n)

    second = Fib(tables=[table])
    second.set_desired(table, wanted, apply=False)
    total_s, result = _timed(second.converged)
    dump_s, dumped = _timed(lambda: second.kernel.dump([table]))
    steady_s, steady = _timed(second.reconcile)
    second.close()
    return {"reconcile_s": total_s, "added": result.added, "replaced": result.replaced,
            "deleted": result.deleted, "errors": list(result.errors)[:5],
            "dump_s": dump_s, "dumped": len(dumped),
            "steady_s": steady_s, "steady_changes": steady.added + steady.replaced + steady.deleted}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["plain", "seg6", "reconcile"])
    parser.add_argument("--routes", type=int, required=True)
    parser.add_argument("--table", type=int, required=True)
    parser.add_argument("--dev", required=True)
    args = parser.parse_args()
    if args.phase == "plain":
        out = install_remove(args.table, plain_routes(args.table, args.routes, args.dev))
    elif args.phase == "seg6":
        out = install_remove(args.table, seg6_routes(args.table, args.routes, args.dev))
    else:
        out = reconcile(args.table, args.routes, args.dev)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
