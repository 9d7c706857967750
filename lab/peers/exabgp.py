"""ExaBGP (the PyPI package, pinned in pyproject) inside one lab namespace.

ExaBGP has no RIB and no library API; it is driven through an API process
(:mod:`lab.peers.exabgp_api`) that the harness writes into the config:

* :meth:`ExaBgp.announce` writes an API command (``announce route ...``) to a
  FIFO; the API process forwards it to ExaBGP, which acknowledges it;
* everything ExaBGP reports (parsed UPDATEs, neighbour state changes, acks) is
  appended to a JSON-lines events file that :meth:`ExaBgp.received_routes`
  and :meth:`ExaBgp.state` read.

Config facts (measured with FRR 8.4 as the other side): ``capability {
nexthop true; }`` plus a ``nexthop { ... }`` block make ExaBGP offer RFC 8950
extended next hop; it offers it for ``ipv4 mpls-vpn`` only if ``ipv6
mpls-vpn`` is also in its family list (likewise ``ipv4 unicast`` needs ``ipv6
unicast``). A link-local session needs
``local-address fe80::...`` plus ``source-interface``; ExaBGP dials out, which
FRR needs (it does not dial a link-local neighbour that sends no RAs).

FRR 8.4 sends ExaBGP's own routes back to it (even with ``neighbor X
sender-as-path-loop-detection``). For VPN routes that breaks the session:
FRR sends them with a 48-byte next hop on a shared link, ExaBGP answers
NOTIFICATION 3/9 and the session flaps for as long as ExaBGP announces VPN
routes to that FRR.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterable

from l3fab.lab.netns import Lab, Namespace, Process, wait_until

API_SCRIPT = Path(__file__).with_name("exabgp_api.py")
DEFAULT_FAMILIES = ("ipv4 unicast", "ipv6 unicast", "ipv4 mpls-vpn", "ipv6 mpls-vpn")
FAMILY_NAMES = {
    "ipv4 unicast": "ipv4", "ipv6 unicast": "ipv6",
    "ipv4 mpls-vpn": "vpnv4", "ipv6 mpls-vpn": "vpnv6",
}
# RFC 8950 next-hop encodings ExaBGP will accept and send, keyed by NLRI family,
# with the family ExaBGP also needs in its list before it really offers one:
# without it, it sends an empty extended next hop capability, which FRR
# refuses with NOTIFICATION 2/0.
EXTENDED_NEXTHOPS = {
    "ipv4 unicast": ("ipv4 unicast ipv6", "ipv6 unicast"),
    "ipv4 mpls-vpn": ("ipv4 mpls-vpn ipv6", "ipv6 mpls-vpn"),
}


def exabgp_command() -> str | None:
    """The ``exabgp`` console script of the running interpreter's environment, else PATH's."""
    beside = Path(sys.executable).with_name("exabgp")
    if beside.exists():
        return str(beside)
    return shutil.which("exabgp")


class ExaBgp:
    """One ExaBGP process with one neighbour, configured by :meth:`start`."""

    def __init__(self, lab: Lab, ns: Namespace | str, *, verbose: bool = False):
        self.lab = lab
        self.ns = lab.namespace(ns)
        self.name = self.ns.name
        self.verbose = verbose
        self.dir = lab.workdir / f"exabgp-{self.name}"
        self.config_file = self.dir / "exabgp.conf"
        self.fifo = self.dir / "commands.fifo"
        self.events_file = self.dir / "events.jsonl"
        self.process: Process | None = None
        self.commands_sent = 0

    # -- life cycle ------------------------------------------------------

    def config(self, *, peer_address: str, local_address: str, local_as: int, peer_as: int,
               router_id: str, families: Iterable[str] = DEFAULT_FAMILIES,
               source_interface: str | None = None, hold_time: int | None = None,
               extended_nexthop: bool = True, passive: bool = False) -> str:
        """The ExaBGP config text for one neighbour plus the API process.

        Extended next hop (IPv4 NLRI with IPv6 next hops) is offered for
        ``ipv4 unicast`` only when ``ipv6 unicast`` is in ``families`` too,
        and for ``ipv4 mpls-vpn`` only with ``ipv6 mpls-vpn``.
        """
        families = list(families)
        for path in (self.fifo, self.events_file):
            if " " in str(path):
                raise ValueError(f"ExaBGP splits 'run' on spaces; path {path} has one")
        lines = [f"router-id {router_id};", f"local-address {local_address};",
                 f"local-as {local_as};", f"peer-as {peer_as};"]
        if source_interface:
            lines.append(f"source-interface {source_interface};")
        if hold_time is not None:
            lines.append(f"hold-time {hold_time};")
        if passive:
            lines.append("passive true;")
        lines.append("family {\n" + "".join(f"    {f};\n" for f in families) + "}")
        nexthops = [EXTENDED_NEXTHOPS[f][0] for f in families
                    if f in EXTENDED_NEXTHOPS and EXTENDED_NEXTHOPS[f][1] in families]
        if extended_nexthop and nexthops:
            lines.append("capability {\n    nexthop true;\n}")
            lines.append("nexthop {\n" + "".join(f"    {n};\n" for n in nexthops) + "}")
        lines.append(textwrap.dedent("""\
            api {
                processes [ lab-api ];
                neighbor-changes;
                receive {
                    parsed;
                    update;
                }
            }"""))
        body = textwrap.indent("\n".join(lines), "    ")
        return (f"process lab-api {{\n"
                f"    run {sys.executable} {API_SCRIPT} {self.fifo} {self.events_file};\n"
                f"    encoder json;\n"
                f"}}\n\n"
                f"neighbor {peer_address} {{\n{body}\n}}\n")

    def start(self, **neighbor: Any) -> "ExaBgp":
        """Write the config (keyword arguments of :meth:`config`) and start ExaBGP.

        ExaBGP connects out to the peer and does not listen. With
        ``passive=True`` it listens on ``local_address`` port 179 instead
        and waits for the peer to connect.
        """
        command = exabgp_command()
        if command is None:
            raise FileNotFoundError("exabgp is not installed (pip install exabgp, see pyproject)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config(**neighbor))
        if self.fifo.exists():
            self.fifo.unlink()
        os.mkfifo(self.fifo, 0o600)
        self.events_file.touch()
        self.lab.add_log(f"{self.name}/exabgp-events", self.events_file)
        self.lab.on_teardown(f"exabgp {self.name}", self.stop)
        env = dict(os.environ)
        env.update({
            "exabgp_daemon_drop": "false",      # stay root: the API writes into the lab dir
            "exabgp_daemon_daemonize": "false",
            "exabgp_api_cli": "false",          # no named pipes in /run/exabgp
            "exabgp_api_ack": "true",
            "exabgp_log_destination": "stdout",
            "exabgp_log_all": "true" if self.verbose else "false",
            "exabgp_tcp_bind": neighbor["local_address"] if neighbor.get("passive") else "",
            "exabgp_tcp_port": "179",
        })
        argv = [command, "server"] + (["-v"] if self.verbose else []) + [str(self.config_file)]
        self.process = self.lab.popen(self.ns, argv, name="exabgp", env=env, cwd=self.dir)
        wait_until(self._api_started, 20, 0.05, what=f"ExaBGP {self.name}: API process",
                   retry_on=())
        return self

    def _api_started(self) -> bool:
        process = self._started()
        if not process.alive():
            raise RuntimeError(f"exabgp exited with {process.popen.returncode}: "
                               f"{process.log_text(3000)}")
        return any(e.get("api") == "started" for e in self.events())

    def _started(self) -> Process:
        """The exabgp process (:meth:`start` made it)."""
        assert self.process is not None, f"ExaBGP {self.name} was not started"
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            self.lab.stop(self.process)

    @property
    def pid(self) -> int:
        """The exabgp process's id (once :meth:`start` ran)."""
        return self._started().pid

    # -- commands --------------------------------------------------------

    def announce(self, command: str, wait: bool = True, timeout: float = 10.0) -> str | None:
        """Send one API command, e.g.
        ``announce route 10.1.0.1/32 next-hop 2001:db8::1`` or
        ``announce route 10.2.0.1/32 rd 65003:7 label 100 extended-community target:65000:7
        next-hop 2001:db8::1``.

        With ``wait``, return ExaBGP's acknowledgement (``done``) and raise if
        it is ``error``.
        """
        if "\n" in command:
            raise ValueError("one command per call")
        try:  # non-blocking: with no API process reading, fail instead of hanging
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise RuntimeError(f"ExaBGP {self.name}: API process not reading {self.fifo} "
                               f"({exc}); log: {self._started().log_text(2000)}") from exc
        try:
            os.set_blocking(fd, True)  # long commands (many prefixes) exceed one pipe write
            data = (command + "\n").encode()
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        self.commands_sent += 1
        if not wait:
            return None
        sent = self.commands_sent
        acks = wait_until(lambda: (lambda a: a if len(a) >= sent else None)(self.acks()),
                          timeout, 0.02, what=f"ExaBGP {self.name}: ack for {command!r}")
        ack = acks[sent - 1]
        if ack != "done":
            raise RuntimeError(f"ExaBGP {self.name} answered {ack!r} to {command!r}; "
                               f"log: {self._started().log_text(2000)}")
        return ack

    # -- what ExaBGP reported --------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        events = []
        with open(self.events_file, encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):  # a partly written last line is read next time
                    events.append(json.loads(line))
        return events

    def acks(self) -> list[str]:
        return [e["ack"] for e in self.events() if "ack" in e]

    def state(self, peer: str | None = None) -> str | None:
        """The last reported neighbour state (``connected``, ``up``, ``down``), or None."""
        last = None
        for event in self.events():
            if event.get("type") == "state":
                neighbor = event["neighbor"]
                if peer is None or neighbor["address"]["peer"] == peer:
                    last = neighbor.get("state")
        return last

    def established(self, peer: str | None = None) -> bool:
        return self.state(peer) == "up"

    def received_routes(self) -> list[dict[str, Any]]:
        """The routes currently announced to ExaBGP, replayed from the events file.

        Each is ``{family, prefix, rd, nexthop, nexthops, labels, route_targets,
        communities, as_path, origin, med, local_pref, peer}`` with ``family``
        one of ipv4, ipv6, vpnv4, vpnv6. A route announced with a global and a
        link-local next hop is reported by ExaBGP twice; here it is one entry
        whose ``nexthops`` lists both. Withdrawals and session loss remove
        routes.
        """
        return routes_from_events(self.events())

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"ExaBgp({self.name!r}, pid={pid})"


def routes_from_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replay ExaBGP's JSON messages (see :meth:`ExaBgp.received_routes`)."""
    rib: dict[tuple[str, str, str | None, str], dict[str, Any]] = {}
    for event in events:
        if event.get("type") == "state" and event["neighbor"].get("state") == "down":
            peer = event["neighbor"]["address"]["peer"]
            rib = {k: v for k, v in rib.items() if k[0] != peer}
        elif event.get("type") == "update":
            _apply_update(rib, event["neighbor"])
    return list(rib.values())


def _apply_update(rib: dict, neighbor: dict[str, Any]) -> None:
    peer = neighbor["address"]["peer"]
    update = neighbor.get("message", {}).get("update", {})
    attributes = update.get("attribute", {})
    for exa_family, nlris in update.get("withdraw", {}).items():
        for nlri in nlris:
            rib.pop((peer, exa_family, nlri.get("rd"), _prefix(nlri)), None)
    seen_here: set[tuple] = set()
    for exa_family, by_nexthop in update.get("announce", {}).items():
        for nexthop, nlris in by_nexthop.items():
            for nlri in nlris:
                key = (peer, exa_family, nlri.get("rd"), _prefix(nlri))
                if key in seen_here:  # same prefix again, with the link-local next hop
                    rib[key]["nexthops"].append(nexthop)
                    continue
                seen_here.add(key)
                rib[key] = _route(peer, exa_family, nexthop, nlri, attributes)


def _prefix(nlri: dict[str, Any]) -> str:
    return nlri["nlri"] if isinstance(nlri, dict) else str(nlri)


def _route(peer: str, exa_family: str, nexthop: str, nlri: dict[str, Any],
           attributes: dict[str, Any]) -> dict[str, Any]:
    ext = [str(c.get("string", c)) if isinstance(c, dict) else str(c)
           for c in attributes.get("extended-community", [])]
    return {
        "family": FAMILY_NAMES.get(exa_family, exa_family),
        "prefix": _prefix(nlri),
        "rd": nlri.get("rd"),
        "nexthop": nexthop,
        "nexthops": [nexthop],
        "labels": _labels(nlri.get("label")),
        "route_targets": [c.removeprefix("target:") for c in ext if c.startswith("target:")],
        "ext_communities": ext,
        "communities": [":".join(map(str, c)) if isinstance(c, list) else str(c)
                        for c in attributes.get("community", [])],
        "as_path": _as_path(attributes.get("as-path")),
        "origin": attributes.get("origin"),
        "med": attributes.get("med"),
        "local_pref": attributes.get("local-preference"),
        "peer": peer,
    }


def _labels(raw: Any) -> list[int]:
    """ExaBGP prints labels as ``[[label, raw 3-byte value]]``; keep the label values."""
    if raw is None:
        return []
    return [item[0] if isinstance(item, list) else int(item) for item in raw]


def _as_path(raw: Any) -> list[int]:
    if raw is None:
        return []
    if isinstance(raw, dict):  # {"0": {"element": "as-sequence", "value": [...]}}
        return [asn for seg in raw.values() for asn in seg.get("value", [])]
    return [int(a) for a in raw]
