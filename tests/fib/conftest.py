"""A :class:`fib.Fib` whose netlink sockets live in a lab namespace.

The sockets (routes, and the link watch) are opened by a short-lived thread
that has entered the namespace (setns on that thread only), so the test process
itself stays where it is. Interface names are resolved inside the namespace too.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

import pytest

from l3fab.fib import Fib
from l3fab.fib.kernel import KernelFib, LinkWatch, open_socket, open_watch_socket
from l3fab.fib.model import RTPROT_L3FAB
from l3fab.lab.netns import Lab, Namespace

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(ns: Namespace, opener=open_socket):
    box: dict = {}

    def enter_and_open() -> None:
        fd = os.open(f"/run/netns/{ns.netns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns.netns}")
            box["sock"] = opener()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=enter_and_open)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]


def fib_in(ns: Namespace, *, watch: bool = True, protocol: int = RTPROT_L3FAB, **kwargs) -> Fib:
    """As the daemon's FIB, in ``ns``; ``watch=False``: without the link watch."""
    def resolve(ifname: str) -> int:  # as socket.if_nametoindex, in the namespace
        for link in ns.ip_json("link", "show"):
            if link["ifname"] == ifname:
                return link["ifindex"]
        raise OSError(errno.ENODEV, f"no interface {ifname} in {ns.netns}")

    link_watch = LinkWatch(socket_in(ns, open_watch_socket)) if watch else None
    fib = Fib(KernelFib(protocol, sock=socket_in(ns), resolve=resolve, watch=link_watch), **kwargs)
    return fib


@pytest.fixture
def router(lab: Lab) -> Namespace:
    """A namespace with uplinks up0 (10.0.0.1/24) and up1 (10.0.1.1/24) to a peer."""
    ns = lab.add_namespace("r")
    lab.add_namespace("peer")
    lab.link("r", "peer", "up0", "down0")
    lab.link("r", "peer", "up1", "down1")
    ns.add_address("up0", "10.0.0.1/24")
    ns.add_address("up1", "10.0.1.1/24")
    return ns
