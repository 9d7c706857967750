"""l3fab's FIB: desired routes per table, reconciled to the kernel over netlink.

See docs/fib.md for operators and :mod:`fib.controller` for the speaker's API.
"""

from l3fab.fib.controller import Fib, FibResult
from l3fab.fib.kernel import KernelFib
from l3fab.fib.model import (RTPROT_L3FAB, FibNextHop, FibRoute, RouteKind, Seg6Encap, Seg6Mode,
                       blackhole, seg6_route, unicast, unreachable)

__all__ = ["Fib", "FibResult", "KernelFib", "RTPROT_L3FAB", "FibNextHop", "FibRoute",
           "RouteKind", "Seg6Encap", "Seg6Mode", "blackhole", "seg6_route", "unicast",
           "unreachable"]
