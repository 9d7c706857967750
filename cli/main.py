"""The ``l3fab`` command line (typer)."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import stat
from pathlib import Path
from typing import List, Optional

import typer
from rich.text import Text

from l3fab.speaker.api import ApiClientError, call
from l3fab.speaker.config import DEFAULT_API_SOCKET
from l3fab.speaker.errors import ConfigError

from .app.daemon import AppConfig, Daemon, load_app_config

from .output import cell, console, emit_json, fail, neighbors_table, print_record, routes_table, rows_table, say

app = typer.Typer(help="l3fab: routing appliance for multi-tenant layer-3 fabrics.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
show = typer.Typer(help="Inspect a running speaker.", no_args_is_help=True)
rib = typer.Typer(help="Routing tables: `show rib` is the Loc-RIB.")
neighbor = typer.Typer(help="Act on one neighbour.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
app.add_typer(show, name="show")
show.add_typer(rib, name="rib")
app.add_typer(neighbor, name="neighbor")
app.add_typer(config_app, name="config")
tenant_app = typer.Typer(help="Tenants (VNIs) of this host.", no_args_is_help=True)
endpoint_app = typer.Typer(help="Tenant endpoints on this host.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(endpoint_app, name="endpoint")
from .render import app as render_app  # noqa: E402 - sub-application

app.add_typer(render_app, name="render")
from .lab import app as lab_app  # noqa: E402 - sub-application

app.add_typer(lab_app, name="lab")

SocketOpt = typer.Option(None, "--socket", "-s", envvar="L3FAB_SOCKET", help="API socket of the running speaker.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def _api(sock: Optional[str], method: str, params: dict | None = None):
    try:
        return call(sock or DEFAULT_API_SOCKET, method, params)
    except ApiClientError as e:
        fail(str(e), 2 if e.bad_input else 1)


def _load(path: Path) -> AppConfig:
    try:
        return load_app_config(path)
    except ConfigError as e:
        fail(f"config: {e}", 2)


@app.command()
def run(config: Path = typer.Option(..., "--config", "-c", help="Node configuration (YAML)."),
        log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
        socket_path: Optional[str] = typer.Option(None, "--socket", "-s",
                                                  help="Override the config's api-socket.")) -> None:
    """Run the BGP speaker and serve the local API until SIGTERM/SIGINT."""
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        fail(f"--log-level: {log_level!r} is not debug, info, warning or error", 2)
    cfg = _load(config)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # A full table is hundreds of thousands of small immutable tuples, which form no
    # reference cycles; CPython's default generation-0 threshold (700) would re-scan
    # them over and over while a table arrives.
    gc.set_threshold(50_000, 20, 100)

    async def main() -> None:
        try:
            daemon = Daemon(cfg, socket_path)
        except ConfigError as e:  # e.g. a tenancy state file that cannot be accepted
            fail(f"config: {e}", 2)
        try:
            await daemon.start()
        except OSError as e:
            fail(f"{e}", 1)
        stop = asyncio.Event()
        stop_hard = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def hard() -> None:
            stop_hard.set()
            stop.set()

        loop.add_signal_handler(signal.SIGUSR1, hard)  # full stop: Cease to peers, kernel objects removed
        gc.freeze()  # start-up objects live forever: keep them out of every collection
        logging.getLogger("l3fab").info("l3fab %s AS %s running, API on %s", cfg.node.router_id, cfg.node.asn,
                                        daemon.api_socket)
        await stop.wait()
        # SIGTERM/SIGINT is a graceful restart: sessions drop without NOTIFICATION and the
        # kernel keeps our routes, so peers that support RFC 4724 keep forwarding while
        # l3fab comes back.
        await daemon.stop(graceful=not stop_hard.is_set())
        try:  # our socket; never whatever may have been put in its place since
            if stat.S_ISSOCK(os.lstat(daemon.api_socket).st_mode):
                os.unlink(daemon.api_socket)
        except OSError:
            pass

    asyncio.run(main())


@config_app.command("check")
def config_check(config: Path = typer.Argument(..., help="Node configuration (YAML).")) -> None:
    """Validate a node configuration and print a summary."""
    cfg = _load(config).node
    say(f"{config}: router-id {cfg.router_id}, AS {cfg.asn}, {len(cfg.neighbors)} neighbour(s): OK")


@show.command("neighbors")
def show_neighbors(sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """BGP neighbours, their state and what they sent."""
    rows = _api(sock, "neighbors")
    if as_json:
        emit_json(rows)
    else:
        console.print(neighbors_table(rows))


@show.command("neighbor")
def show_neighbor(name: str = typer.Argument(..., help="Name, address or interface."),
                  sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Everything about one neighbour (capabilities, counters, errors)."""
    row = _api(sock, "neighbor", {"neighbor": name})
    if as_json:
        emit_json(row)
        return
    print_record(row, 22)


@show.command("fib")
def show_fib(table: Optional[int] = typer.Option(None, "--table", help="Kernel table (default: the node's)."),
             vrf: Optional[str] = typer.Option(None, "--vrf", help="A tenant: its VRF table."),
             sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """The routes l3fab installed in the kernel (read back from the kernel)."""
    if vrf is not None and table is not None:
        fail("--vrf: give either --vrf or --table, not both", 2)
    rows = _api(sock, "fib", {"table": table, "vrf": vrf})
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    if vrf is not None:
        t = Table(title=cell(f"VRF {vrf} (kernel table, l3fab's routes)"), header_style="bold")
        for col in ("Table", "Prefix", "Kind", "Next hops"):
            t.add_column(col, overflow="fold")
        for r in rows:
            hops = []
            for h in r.get("nexthops", []):
                enc = h.get("encap")
                text = f"encap seg6 {enc['mode']} segs {' '.join(enc['segs'])}" if enc else ""
                if h.get("gateway"):
                    text = f"via {h['gateway']} " + text
                if h.get("ifname") and not enc:
                    text += f"dev {h['ifname']}"
                hops.append(text.strip())
            if "sids" in r:
                hops = [f"encap seg6 encap.red segs {s}" for s in r["sids"]]
            t.add_row(cell(r["table"]), cell(r["prefix"]), cell(r["kind"]), cell(", ".join(hops) or "-"))
        console.print(t)
        return
    t = Table(title="FIB (kernel routes of protocol l3fab)", header_style="bold")
    for col in ("Table", "Prefix", "Kind", "Next hops"):
        t.add_column(col, overflow="fold")
    for r in rows:
        hop_text = ", ".join(
            f"{h['gateway'] or ''}{' dev ' + str(h['ifname'] or h['ifindex']) if (h['ifname'] or h['ifindex']) else ''}"
            f"{' encap seg6 ' + ','.join(h['encap']) if h['encap'] else ''}" for h in r["nexthops"])
        t.add_row(cell(r["table"]), cell(r["prefix"]), cell(r["kind"]), cell(hop_text or "-"))
    console.print(t)


@show.command("vrf")
def show_vrf(rejected: bool = typer.Option(False, "--rejected", help="VPN routes not imported, and why."),
             sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Tenant VRFs: table, RD, RT, peerings, local endpoints, imported routes."""
    if rejected:
        _print_rows("VPN routes not imported", _api(sock, "vrf_rejected"), ["route", "reason"], as_json)
        return
    rows = _api(sock, "vrfs")
    if as_json:
        emit_json(rows)
        return
    _print_rows("VRFs", [{**r, "peers": ",".join(r["effective_peers"]) or "-"} for r in rows],
                ["name", "vni", "families", "table", "rd", "route_target", "peers", "endpoints", "imported_routes",
                 "mode"], False)


@show.command("endpoints")
def show_endpoints(tenant: Optional[str] = typer.Option(None, "--tenant"),
                   sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Local endpoints: addresses, SIDs, interface, plumbing status, filter counters."""
    rows = _api(sock, "endpoints", {"tenant": tenant})
    if as_json:
        emit_json(rows)
        return
    flat = []
    for r in rows:
        c = r.get("counters") or {}
        drops = {k: v.get("packets", 0) for k, v in c.items() if isinstance(v, dict) and k != "accepted"}
        flat.append({**r, "sids": " ".join(x for x in (r.get("sid4"), r.get("sid6")) if x),
                     "drops": " ".join(f"{k}={v}" for k, v in sorted(drops.items())) or "-",
                     "rate": r.get("rate_limit_text") or "-"})
    _print_rows("Endpoints", flat, ["name", "tenant", "interface", "ipv4", "ipv6", "sids", "status", "rate", "drops"],
                False)


@show.command("dataplane")
def show_dataplane(sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """The packet path: VRF mode, rules, SIDs, filter counters, rate limits, errors."""
    row = _api(sock, "dataplane")
    if as_json:
        emit_json(row)
        return
    print_record({k: row[k] for k in ("backend", "vrf_mode", "tunnel_source", "underlay_mtu", "endpoint_mtu",
                                      "converged", "preserved_at_start", "remote_routes", "vrfs", "endpoints",
                                      "imported_routes") if k in row}, 18)
    if row.get("rules"):
        _print_rows("ip rules (l3fab)", row["rules"], ["family", "pref", "from", "iif", "table"], False)
    if row.get("sids"):
        _print_rows("SIDs (seg6local)", row["sids"], ["endpoint", "tenant", "sid4", "action4", "nh4", "sid6",
                                                      "action6", "table", "interface"], False)
    counters = row.get("counters") or {}
    crow = [{"endpoint": ep, **{k: v.get("packets", 0) for k, v in c.items() if isinstance(v, dict)}}
            for ep, c in counters.items() if isinstance(c, dict)]
    if crow:
        cols = ["endpoint"] + sorted({k for r in crow for k in r if k != "endpoint"})
        _print_rows("nftables counters (packets)", crow, cols, False)
    for key in ("waiting", "errors"):
        if row.get(key):
            console.print(Text.assemble((key, "bold red"), ": ", cell(row[key])), highlight=False)


@show.command("status")
def show_status(sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """The speaker's identity and counters."""
    row = _api(sock, "status")
    if as_json:
        emit_json(row)
        return
    print_record(row, 14)


@rib.command("received")
def rib_received(name: str = typer.Argument(..., help="Neighbour name, address or interface."),
                 family: Optional[str] = typer.Option(None, "--family", "-f", help="ipv4, ipv6, vpnv4 or vpnv6."),
                 limit: int = typer.Option(0, "--limit", help="Show at most this many routes (0: all)."),
                 sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Routes received from a neighbour (its Adj-RIB-In)."""
    rows = _api(sock, "rib_received", {"neighbor": name, "family": family, "limit": limit or None})
    if as_json:
        emit_json(rows)
    else:
        console.print(routes_table(f"Received from {name}", rows))


@rib.callback(invoke_without_command=True)
def rib_loc(ctx: typer.Context,
            family: Optional[str] = typer.Option(None, "--family", "-f", help="ipv4, ipv6, vpnv4 or vpnv6."),
            prefix: Optional[str] = typer.Option(None, "--prefix", help="Only this prefix."),
            limit: int = typer.Option(0, "--limit", help="Show at most this many paths (0: all)."),
            sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """The Loc-RIB: every path per destination, the best (>) and multipath (=) ones."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _api(sock, "rib", {"family": family, "prefix": prefix, "limit": limit or None})
    if as_json:
        emit_json(rows)
    else:
        console.print(routes_table("Loc-RIB", rows))


@rib.command("advertised")
def rib_advertised(name: str = typer.Argument(..., help="Neighbour name, address or interface."),
                   family: Optional[str] = typer.Option(None, "--family", "-f"),
                   sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """What this speaker last sent a neighbour (its Adj-RIB-Out)."""
    rows = _api(sock, "rib_advertised", {"neighbor": name, "family": family})
    if as_json:
        emit_json(rows)
    else:
        console.print(routes_table(f"Advertised to {name}", rows))


@rib.command("local")
def rib_local(family: Optional[str] = typer.Option(None, "--family", "-f"),
              sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Routes this speaker originates."""
    rows = _api(sock, "local_routes", {"family": family})
    if as_json:
        emit_json(rows)
    else:
        console.print(routes_table("Originated", rows))


def _route_spec(prefix, next_hop, rd, rt, label, community, large_community, med, local_pref, as_path, origin) -> dict:
    spec: dict = {"prefix": prefix}
    for key, val in (("next_hop", next_hop), ("rd", rd), ("med", med), ("local_pref", local_pref), ("origin", origin)):
        if val is not None:
            spec[key] = val
    if rt:
        spec["route_targets"] = list(rt)
    if label:
        spec["labels"] = list(label)
    if community:
        spec["communities"] = list(community)
    if large_community:
        spec["large_communities"] = list(large_community)
    if as_path:
        spec["as_path"] = as_path
    return spec


def _routes_from_file(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        fail(f"--file: {str(path)!r} cannot be read: {e.strerror}", 2)
    except json.JSONDecodeError as e:
        fail(f"--file: {str(path)!r} is not JSON ({e.msg} at line {e.lineno})", 2)
    if isinstance(data, dict):
        data = data.get("routes")
    if not isinstance(data, list):
        fail(f"--file: {str(path)!r} holds no list of routes", 2)
    return data


@app.command()
def announce(prefix: Optional[str] = typer.Argument(None, help="Prefix, e.g. 10.0.0.1/32."),
             next_hop: Optional[str] = typer.Option(None, "--next-hop", help="Next hop (the SID for VPN routes)."),
             rd: Optional[str] = typer.Option(None, "--rd", help="Route distinguisher: makes it a VPN route."),
             rt: List[str] = typer.Option([], "--rt", help="Route target ASN:NN (repeatable)."),
             label: List[int] = typer.Option([], "--label", help="MPLS label (repeatable)."),
             community: List[str] = typer.Option([], "--community"),
             large_community: List[str] = typer.Option([], "--large-community"),
             med: Optional[int] = typer.Option(None, "--med"),
             local_pref: Optional[int] = typer.Option(None, "--local-pref"),
             as_path: Optional[str] = typer.Option(None, "--as-path", help="Space-separated ASNs."),
             origin: Optional[str] = typer.Option(None, "--origin", help="igp, egp or incomplete."),
             file: Optional[Path] = typer.Option(None, "--file", help="JSON list of route objects."),
             sock: Optional[str] = SocketOpt) -> None:
    """Originate routes from the running speaker."""
    if file is not None:
        routes = _routes_from_file(file)
    elif prefix:
        routes = [_route_spec(prefix, next_hop, rd, rt, label, community, large_community, med, local_pref, as_path,
                              origin)]
    else:
        fail("prefix: missing (give a PREFIX or --file)", 2)
    res = _api(sock, "announce", {"routes": routes})
    say(f"announced {res['announced']} route(s)")


@app.command()
def withdraw(prefix: Optional[str] = typer.Argument(None, help="Prefix to withdraw."),
             rd: Optional[str] = typer.Option(None, "--rd"),
             file: Optional[Path] = typer.Option(None, "--file", help="JSON list of route objects."),
             sock: Optional[str] = SocketOpt) -> None:
    """Withdraw routes this speaker originated."""
    if file is not None:
        routes = _routes_from_file(file)
    elif prefix:
        routes = [{"prefix": prefix, **({"rd": rd} if rd else {})}]
    else:
        fail("prefix: missing (give a PREFIX or --file)", 2)
    res = _api(sock, "withdraw", {"routes": routes})
    say(f"withdrew {res['withdrawn']} route(s)")


@neighbor.command("refresh")
def neighbor_refresh(name: str, family: str = typer.Option("ipv4", "--family", "-f"),
                     sock: Optional[str] = SocketOpt) -> None:
    """Ask a neighbour to send its routes again (ROUTE-REFRESH, RFC 2918)."""
    _api(sock, "route_refresh", {"neighbor": name, "family": family})
    say(f"route refresh for {family} sent to {name}")


@neighbor.command("reset")
def neighbor_reset(name: str, message: str = typer.Option("", "--message"), sock: Optional[str] = SocketOpt) -> None:
    """Reset a session (Cease / administrative reset) and let it come back."""
    _api(sock, "reset", {"neighbor": name, "message": message})
    say(f"session with {name} reset")


def _print_record(row: dict, as_json: bool) -> None:
    if as_json:
        emit_json(row)
        return
    print_record(row, 16)


def _print_rows(title: str, rows: list[dict], columns: list[str], as_json: bool) -> None:
    if as_json:
        emit_json(rows)
        return
    console.print(rows_table(title, rows, columns))


@tenant_app.command("create")
def tenant_create(name: str, vni: int = typer.Option(..., "--vni", help="1-16777215."),
                  families: str = typer.Option("dual-stack", "--families", help="ipv4-only, dual-stack or ipv6-only."),
                  peer: List[str] = typer.Option([], "--peer", help="Tenant to exchange routes with (repeatable; "
                                                 "effective only when configured on both sides)."),
                  sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Create a tenant; RD, route target and kernel table are allocated and kept."""
    _print_record(_api(sock, "tenant_create", {"name": name, "vni": vni, "families": families, "peers": peer}), as_json)


@tenant_app.command("peers")
def tenant_peers(name: str, peer: List[str] = typer.Option([], "--peer"),
                 sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Replace the tenants this tenant exchanges routes with."""
    _print_record(_api(sock, "tenant_peers", {"name": name, "peers": peer}), as_json)


@tenant_app.command("delete")
def tenant_delete(name: str, sock: Optional[str] = SocketOpt) -> None:
    """Delete a tenant that has no endpoints left."""
    _api(sock, "tenant_delete", {"name": name})
    say(f"tenant {name} deleted")


@tenant_app.command("list")
def tenant_list(sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    _print_rows("Tenants", _api(sock, "tenant_list"), ["name", "vni", "families", "rd", "route_target", "table",
                                                        "peers"], as_json)


@tenant_app.command("show")
def tenant_show(name: str, sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    _print_record(_api(sock, "tenant_show", {"name": name}), as_json)


@endpoint_app.command("add")
def endpoint_add(name: str, tenant: str = typer.Option(..., "--tenant"),
                 interface: str = typer.Option(..., "--interface", help="TAP, veth or VF on this host."),
                 ipv4: Optional[str] = typer.Option(None, "--ipv4", help="The endpoint's /32."),
                 ipv6: Optional[str] = typer.Option(None, "--ipv6", help="The endpoint's /128."),
                 rate_limit: Optional[str] = typer.Option(None, "--rate-limit", help="e.g. 100mbit."),
                 sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    """Add an endpoint: its SID is allocated and its routes are announced."""
    _print_record(_api(sock, "endpoint_add", {"name": name, "tenant": tenant, "interface": interface,
                                              "ipv4": ipv4, "ipv6": ipv6, "rate_limit": rate_limit}), as_json)


@endpoint_app.command("remove")
def endpoint_remove(name: str, sock: Optional[str] = SocketOpt) -> None:
    """Remove an endpoint: its routes are withdrawn everywhere."""
    _api(sock, "endpoint_remove", {"name": name})
    say(f"endpoint {name} removed")


@endpoint_app.command("list")
def endpoint_list(tenant: Optional[str] = typer.Option(None, "--tenant"), sock: Optional[str] = SocketOpt,
                  as_json: bool = JsonOpt) -> None:
    _print_rows("Endpoints", _api(sock, "endpoint_list", {"tenant": tenant}),
                ["name", "tenant", "interface", "ipv4", "ipv6", "sid4", "sid6"], as_json)


@endpoint_app.command("show")
def endpoint_show(name: str, sock: Optional[str] = SocketOpt, as_json: bool = JsonOpt) -> None:
    _print_record(_api(sock, "endpoint_show", {"name": name}), as_json)


if __name__ == "__main__":
    app()
