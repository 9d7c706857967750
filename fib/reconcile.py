"""The difference between desired and installed routes, as a plan (pure, no kernel).

Level-triggered, as a Kubernetes controller: the plan depends only on the two
states, so running it again after a crash or restart converges without
touching what is already right.

Both states are keyed by *pid* ``(table, af, dst, dst_len)``: one prefix in one
table. A desired pid has one ``(metric, signature)``; an installed pid may have
routes under several metrics (``{metric: signature}``), since the kernel keeps
those apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from l3fab.fib.netlink import Signature, sig_matches

Pid = tuple[int, int, bytes, int]  # (table, af, dst, dst_len)


@dataclass
class Plan:
    """``(pid, metric)`` pairs to add (absent), replace (ours, different) and delete."""

    add: list[tuple[Pid, int]] = field(default_factory=list)
    replace: list[tuple[Pid, int]] = field(default_factory=list)
    delete: list[tuple[Pid, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.add) + len(self.replace) + len(self.delete)


def diff(desired: Mapping[Pid, tuple[int, Signature]],
         actual: Mapping[Pid, Mapping[int, Signature]], *, prune: bool) -> Plan:
    """Plan the changes that turn ``actual`` (routes l3fab owns) into ``desired``.

    Installed routes of prefixes nobody wants are deleted only when ``prune``
    is set (the RIB has converged). A wanted prefix installed under another
    metric is a change, not a stale route: the old metric goes in any case,
    after the new route is in (the plan lists adds and replaces first).
    """
    plan = Plan()
    add, replace, delete = plan.add.append, plan.replace.append, plan.delete.append
    get = actual.get
    for pid, (metric, sig) in desired.items():
        have = get(pid)
        if have is None:
            add((pid, metric))
            continue
        now = have.get(metric)
        if now is None:
            add((pid, metric))
        elif now != sig and not sig_matches(sig, now):
            replace((pid, metric))
        if len(have) > 1 or now is None:
            for other in have:
                if other != metric:
                    delete((pid, other))
    if prune:
        for pid, have in actual.items():
            if pid not in desired:
                for metric in have:
                    delete((pid, metric))
    return plan
