"""The four receivers under test, behind one small interface.

A receiver runs in its own namespace on its own link to the FRR sender
(:class:`bench.topology.Link`). For one measurement it is started fresh
(:meth:`Receiver.start`), then the sender opens the session, and the
benchmark asks it:

* :meth:`Receiver.established_at` -- wall-clock time (``time.time()``) its
  session became Established, from the receiver's own records where it keeps
  them, else None;
* :meth:`Receiver.count` -- how many routes of a family it holds, as cheaply as
  the receiver allows;
* :meth:`Receiver.done_at` -- the time it finished, where the receiver records
  it more precisely than polling would (else None: the first poll that saw the
  full count is used, and :attr:`Receiver.poll_interval` is the resolution);
* :meth:`Receiver.pids` -- the processes whose memory counts.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from l3fab.lab.netns import Lab, Namespace, wait_until
from l3fab.lab.peers import gobgp
from l3fab.lab.peers.exabgp import API_SCRIPT, ExaBgp
from l3fab.lab.peers.frr import FrrRouter
from l3fab.lab.peers.l3fab import L3fabNode
from l3fab.speaker.api import call

from .procstat import descendants
from .frr_vty import BgpdVty
from .topology import SENDER_AS, Link, prefixes_received

BENCH_DIR = Path(__file__).resolve().parent
EXABGP_LOG_LEVEL = "exabgp_log_level"
L3FAB_FAMILY_NAMES = {"ipv4": "ipv4-unicast", "vpnv4": "vpnv4"}


class Receiver:
    kind = ""
    label = ""
    poll_interval = 0.05
    established_poll = 0.01  # nothing has arrived yet, so polling costs nothing
    routes_note = ""  # what the count counts, for the report

    def __init__(self, lab: Lab, ns: Namespace, link: Link):
        self.lab = lab
        self.ns = ns
        self.link = link

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def established(self) -> bool:
        return self.established_at() is not None

    def established_at(self) -> float | None:
        raise NotImplementedError

    def count(self, family: str) -> int:
        raise NotImplementedError

    def done_at(self) -> float | None:
        return None


class L3fabReceiver(Receiver):
    """``l3fab run``: counts from the ``rib_received_count`` API call (a dict length).

    Its FIB is off (``fib: {enabled: false}``), as FRR's receiver runs with
    ``-n``: the benchmark is about BGP, not about the kernel's route insertion.
    """

    kind = "l3fab"
    label = "l3fab"
    poll_interval = 0.02
    routes_note = "Adj-RIB-In entries (rib_received_count)"

    def __init__(self, lab: Lab, ns: Namespace, link: Link):
        super().__init__(lab, ns, link)
        self.node: L3fabNode | None = None

    def node_config(self) -> dict[str, Any]:
        return {
            "router-id": self.link.router_id, "asn": self.link.asn, "fib": {"enabled": False},
            "neighbors": [{"name": "frr", "address": self.link.sender_address,
                           "remote-as": SENDER_AS, "families": ["ipv4", "vpnv4"],
                           "passive": True}],
        }

    def start(self) -> None:
        self.node = L3fabNode(self.lab, self.ns, self.node_config(), log_level="info").start()

    def _started(self) -> L3fabNode:
        assert self.node is not None, "the l3fab receiver was not started"
        return self.node

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()

    def pids(self) -> list[int]:
        return [self._started().pid]

    def established_at(self) -> float | None:
        view = self._started().neighbor("frr")
        return view["state_since"] if view["state"] == "Established" else None

    def count(self, family: str) -> int:
        counts = call(self._started().socket, "rib_received_count", {"neighbor": "frr"})
        return counts.get(L3FAB_FAMILY_NAMES[family], 0)


class GoBgpReceiver(Receiver):
    """gobgpd: Established from the WatchEvent peer stream, counts from ListPeer.

    ListPeer's ``accepted`` is a counter, but gobgpd walks its Adj-RIB-In for
    ``received`` on every call, so polls are kept to 10 a second.
    """

    kind = "gobgpd"
    label = "gobgpd"
    poll_interval = 0.1
    routes_note = "ListPeer accepted (Adj-RIB-In after import policy)"

    def __init__(self, lab: Lab, ns: Namespace, link: Link):
        super().__init__(lab, ns, link)
        self.gobgp: gobgp.GoBgp | None = None
        self._established_at: float | None = None
        self._watch: Any = None  # the WatchEvent stream (a grpc call object)

    def start(self) -> None:
        self._established_at = None
        self.gobgp = gobgp.GoBgp(self.lab, self.ns, log_level="warn").start()
        self.gobgp.start_bgp(self.link.asn, self.link.router_id,
                             listen_addresses=[self.link.address])
        self._watch_peers()
        self.gobgp.add_peer(self.link.sender_address, SENDER_AS, families=("ipv4", "vpnv4"),
                            passive=True)

    def _stub(self) -> Any:
        """gobgpd's API stub (generated gRPC code, untyped)."""
        assert self.gobgp is not None and self.gobgp.stub is not None, "the gobgpd receiver was not started"
        return self.gobgp.stub

    def _watch_peers(self) -> None:
        api = gobgp.api
        stream = self._stub().WatchEvent(api.WatchEventRequest(peer=api.WatchEventRequest.Peer()))
        self._watch = stream
        established = api.PeerState.SessionState.ESTABLISHED

        def follow() -> None:
            try:
                for event in stream:
                    peer = event.peer.peer
                    if (event.HasField("peer") and self._established_at is None
                            and peer.state.session_state == established):
                        self._established_at = time.time()
            except Exception:  # noqa: BLE001 - the stream ends with an error when gobgpd stops
                pass

        threading.Thread(target=follow, daemon=True, name="gobgp-watch").start()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.gobgp is not None:
            self.gobgp.stop()

    def pids(self) -> list[int]:
        assert self.gobgp is not None, "the gobgpd receiver was not started"
        return [self.gobgp.pid]

    def established_at(self) -> float | None:
        return self._established_at

    def count(self, family: str) -> int:
        wanted = gobgp.family(family).message()
        for response in self._stub().ListPeer(gobgp.api.ListPeerRequest(
                address=self.link.sender_address), timeout=10):
            for afi_safi in response.peer.afi_safis:
                state = afi_safi.state
                if (state.family.afi, state.family.safi) == (wanted.afi, wanted.safi):
                    return state.accepted
        return 0


class _ScriptedExaBgp(ExaBgp):
    """The lab's ExaBGP harness with another API process in place of the lab's relay."""

    def __init__(self, lab: Lab, ns: Namespace, script: Path, *args: str):
        super().__init__(lab, ns)
        self.script = script
        self.script_args = [str(a) for a in args]

    def start(self, **neighbor: Any) -> "_ScriptedExaBgp":
        """Start as the harness does, with ExaBGP's logging at WARNING.

        At its default (INFO) ExaBGP logs a line per route announced through the
        API and per UPDATE received; an operator tuning it for volume would not.
        The harness starts ExaBGP with a copy of this process's environment.
        """
        saved = os.environ.get(EXABGP_LOG_LEVEL)
        os.environ[EXABGP_LOG_LEVEL] = "WARNING"
        try:
            super().start(**neighbor)
            return self
        finally:
            if saved is None:
                del os.environ[EXABGP_LOG_LEVEL]
            else:
                os.environ[EXABGP_LOG_LEVEL] = saved

    def config(self, **neighbor: Any) -> str:
        text = super().config(**neighbor)
        relay = f"run {sys.executable} {API_SCRIPT} {self.fifo} {self.events_file};"
        if relay not in text:
            raise RuntimeError("lab.peers.exabgp's config no longer runs the relay as expected; "
                               "update bench.receivers._ScriptedExaBgp")
        ours = " ".join([sys.executable, str(self.script), str(self.events_file), *self.script_args])
        return text.replace(relay, f"run {ours};")

    def last(self, key: str) -> dict[str, Any] | None:
        """The last record of the events file that has ``key``."""
        found = None
        for event in self.events():
            if key in event:
                found = event
        return found

    def neighbor_config(self, link: Link) -> dict[str, Any]:
        return dict(peer_address=link.sender_address, local_address=link.address,
                    local_as=link.asn, peer_as=SENDER_AS, router_id=link.router_id)


class ExaBgpReceiver(Receiver):
    """ExaBGP 5 with a counting API process (:mod:`bench.exabgp_counter`).

    ExaBGP keeps no RIB: "holding" means its API process has been told of
    every route. Memory counts ExaBGP and the API process.
    """

    kind = "exabgp"
    label = "ExaBGP"
    poll_interval = 0.1
    routes_note = "prefixes its API process was told of"

    def __init__(self, lab: Lab, ns: Namespace, link: Link, target: int = 0):
        super().__init__(lab, ns, link)
        self.target = target
        self.exabgp: _ScriptedExaBgp | None = None

    def start(self) -> None:
        self.exabgp = _ScriptedExaBgp(self.lab, self.ns, BENCH_DIR / "exabgp_counter.py",
                                      str(self.target))
        if self.exabgp.events_file.exists():
            self.exabgp.events_file.unlink()  # one run's records only
        self.exabgp.start(**self.exabgp.neighbor_config(self.link))
        # ExaBGP starts its API process first; the tree is complete once it has reported.

    def _started(self) -> _ScriptedExaBgp:
        assert self.exabgp is not None, "the ExaBGP receiver was not started"
        return self.exabgp

    def stop(self) -> None:
        if self.exabgp is not None:
            self.exabgp.stop()

    def pids(self) -> list[int]:
        return descendants(self._started().pid)

    def established_at(self) -> float | None:
        for event in self._started().events():
            if event.get("type") == "state" and event["neighbor"].get("state") == "up":
                return event["time"]
        return None

    def count(self, family: str) -> int:
        exabgp = self._started()
        done = exabgp.last("done")
        if done is not None:
            return done["count"]
        progress = exabgp.last("count")
        return progress["count"] if progress else 0

    def done_at(self) -> float | None:
        done = self._started().last("done")
        return done["done"] if done else None


class FrrReceiver(Receiver):
    """FRR bgpd with ``-n`` (RIB only, no kernel), zebra beside it for interface data.

    bgpd's own timers (``bgpTimerUpMsec``, ``bgpInUpdateElapsedTimeMsecs``) count
    whole seconds, so both ends are polled, on bgpd's vty socket
    (:mod:`bench.frr_vty`: a fraction of a millisecond a query). Memory counts
    bgpd only (zebra holds no routes with ``-n``).
    """

    kind = "frr"
    label = "FRR bgpd -n"
    poll_interval = 0.01
    established_poll = 0.001  # the poll time is the Established time: keep it close
    routes_note = "pfxRcd"

    def __init__(self, lab: Lab, ns: Namespace, link: Link):
        super().__init__(lab, ns, link)
        self.frr: FrrRouter | None = None
        self.vty: BgpdVty | None = None

    def start(self) -> None:
        self.frr = FrrRouter(self.lab, self.ns, no_kernel=True, staticd=False)
        peer = self.link.sender_address
        self.frr.start(f"""
            router bgp {self.link.asn}
             bgp router-id {self.link.router_id}
             no bgp ebgp-requires-policy
             no bgp default ipv4-unicast
             neighbor {peer} remote-as {SENDER_AS}
             neighbor {peer} passive
             neighbor {peer} disable-connected-check
             neighbor {peer} capability extended-nexthop
             address-family ipv4 unicast
              neighbor {peer} activate
             exit-address-family
             address-family ipv4 vpn
              neighbor {peer} activate
             exit-address-family
        """)
        self.vty = BgpdVty(self.frr)

    def _vty(self) -> BgpdVty:
        assert self.vty is not None, "the FRR receiver was not started"
        return self.vty

    def stop(self) -> None:
        if self.vty is not None:
            self.vty.close()
        if self.frr is not None:
            self.frr.stop()

    def pids(self) -> list[int]:
        assert self.frr is not None, "the FRR receiver was not started"
        return [self.frr.pids()["bgpd"]]

    def established(self) -> bool:
        peer = self.link.sender_address
        info = self._vty().json(f"show bgp neighbors {peer} json").get(peer, {})
        return info.get("bgpState") == "Established"

    def established_at(self) -> float | None:
        return None  # bgpd counts uptime in whole seconds: the poll time is closer

    def count(self, family: str) -> int:
        return prefixes_received(self._vty(), self.link.sender_address, family)


RECEIVERS: dict[str, type[Receiver]] = {
    cls.kind: cls for cls in (L3fabReceiver, GoBgpReceiver, ExaBgpReceiver, FrrReceiver)}


def wait_established(receiver: Receiver, timeout: float = 60.0) -> float:
    """When the receiver's session came up: its own record, else the first poll that saw it."""
    wait_until(receiver.established, timeout, receiver.established_poll,
               what=f"{receiver.label}: session with the FRR sender Established")
    seen = time.time()
    return receiver.established_at() or seen
