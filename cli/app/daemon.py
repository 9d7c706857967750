"""The appliance: assembles the layers into the ``l3fab run`` daemon.

- the node config: each section parsed by its own layer (the speaker's part,
  ``tenancy:``, ``dataplane:``) into one :class:`AppConfig`;
- the speaker (a BGP library that knows no tenant and no kernel);
- the Loc-RIB consumers: the kernel FIB feed (unicast) and the tenant plane (VPN),
  both writing to the kernel only through one :class:`KernelWorker`;
- the API: one dispatch table, filled by each layer with its own methods.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from l3fab.dataplane.intent import DataplaneSettings
from l3fab.dataplane.linux import LinuxDataplane
from l3fab.fib.worker import KernelWorker
from l3fab.speaker.api import Api, Handler, Params, serve
from l3fab.speaker.config import NodeConfig, parse_config, read_yaml
from l3fab.speaker.errors import ApiError, ConfigError
from l3fab.speaker.handlers import bgp_handlers, status
from l3fab.speaker.policy import Policy, parse_policy
from l3fab.speaker.policy.roles import host_export_config
from l3fab.speaker.server import Speaker
from l3fab.speaker.wire.constants import VPNV4, VPNV6
from l3fab.speaker.wire.nlri import VpnPrefix
from l3fab.tenancy.config import TenancyConfig, parse_tenancy
from l3fab.tenancy.intent import Intent

from .dataplane_config import parse_dataplane
from .fib_feed import FibFeed
from .tenancy_api import ORIGIN_GROUP, tenancy_handlers
from .tenant_plane import TenantPlane

log = logging.getLogger("l3fab")
SECTIONS = frozenset({"tenancy", "dataplane"})
FIB_RECONCILE = 30.0  # seconds between full reconciles of the underlay FIB (repairs: every second)
TENANCY_METHODS = ("tenant_create", "tenant_peers", "tenant_delete", "tenant_list", "tenant_show", "endpoint_add",
                   "endpoint_remove", "endpoint_list", "endpoint_show", "vrfs", "vrf_rejected", "endpoints",
                   "dataplane")


@dataclass(frozen=True)
class AppConfig:
    """The whole node config: the speaker's part plus the appliance's sections."""

    node: NodeConfig
    tenancy: TenancyConfig | None = None
    dataplane: DataplaneSettings | None = None


def parse_app_config(data: Any, source: str = "") -> AppConfig:
    node = parse_config(data, source, SECTIONS)
    tenancy = parse_tenancy(data["tenancy"], data["router-id"]) if "tenancy" in data else None
    dataplane = parse_dataplane(data.get("dataplane"), node.fib.enabled, tenancy.locator if tenancy else None)
    return AppConfig(node, tenancy, dataplane)


def load_app_config(path: str | Path) -> AppConfig:
    return parse_app_config(read_yaml(path), str(path))


def host_export_policy(cfg: AppConfig) -> Policy | None:
    """ARCHITECTURE.md's host export rule, for a host with tenants: its locator, VPN routes
    whose next hop is one of its SIDs, and the prefixes its config lists under
    ``networks`` - never a route learned from another host."""
    if cfg.node.role != "host" or cfg.tenancy is None:
        return None
    policy_cfg = host_export_config(cfg.tenancy.locator)
    nets = [str(r.nlri) for r in cfg.node.networks if type(r.nlri) is not VpnPrefix]
    if nets:
        policy_cfg["terms"].insert(0, {"name": "configured-networks", "match": {"prefix": nets}, "action": "accept"})
    return parse_policy("host-export", policy_cfg)


def _no_tenancy(params: Params) -> Any:
    raise ApiError("tenancy: this node has no tenancy section in its config")


class Daemon:
    """The running appliance; :meth:`start` and :meth:`stop` are called by ``l3fab run``."""

    def __init__(self, cfg: AppConfig, api_socket: str | None = None) -> None:
        self.cfg = cfg
        node = cfg.node
        self.api_socket = api_socket or node.api_socket
        self.worker = KernelWorker()
        export = host_export_policy(cfg)
        export_name = None
        if export is not None and cfg.tenancy is not None:  # there is one only with a tenancy section
            export_name = f"host-export {cfg.tenancy.locator} (built in)"
        self.speaker = Speaker(node, export, export_name)
        self.fib = FibFeed(node.fib, self.worker, self.speaker.peer_interfaces()) if node.fib.enabled else None
        self.tenants: TenantPlane | None = None
        if cfg.tenancy is not None:
            # raises IntentError (a ConfigError) when the state file cannot be accepted
            intent = Intent.load(cfg.tenancy.state_file, cfg.tenancy.node)
            settings = cfg.dataplane or DataplaneSettings(enabled=False)
            dataplane = None
            if settings.enabled:
                uplinks = [n.interface for n in node.neighbors if n.interface]
                dataplane = LinuxDataplane(uplinks=uplinks, use_nft=settings.nftables, use_tc=settings.rate_limits)
            self.tenants = TenantPlane(intent, settings, dataplane, self.worker, node.maximum_paths,
                                       partial(self.speaker.rib.best, (VPNV4, VPNV6)))
        self.api = self._api()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _api(self) -> Api:
        api = Api()
        handlers: dict[str, Handler] = bgp_handlers(self.speaker)
        handlers["status"] = self._status
        handlers["fib"] = self._fib
        if self.tenants is not None:
            handlers.update(tenancy_handlers(self.tenants, self.speaker))
        else:
            handlers.update({m: _no_tenancy for m in TENANCY_METHODS})
        api.update(handlers)
        return api

    def _status(self, params: Params) -> dict[str, Any]:
        out = status(self.speaker, params)
        out["fib"] = self.fib.summary() if self.fib is not None else None
        return out

    async def _fib(self, params: Params) -> Any:
        if params.get("vrf"):
            if self.tenants is None:
                raise ApiError("tenancy: this node has no tenancy section in its config")
            return await self.api.dispatch("vrf_fib", params)
        if self.fib is None:
            raise ApiError("fib: the FIB is disabled on this node (fib.enabled: false)")
        table = params.get("table")
        if table is not None and (isinstance(table, bool) or not isinstance(table, int) or not 0 < table < 2**32):
            raise ApiError(f"table: {table!r} is not a kernel table id")
        return await self.fib.view(table)

    async def start(self) -> None:
        restarting = False
        if self.fib is not None:
            restarting = await self.fib.start()
            self._tasks.append(asyncio.get_running_loop().create_task(self.fib.keep_repaired(FIB_RECONCILE)))
        if self.tenants is not None:
            had = await self.tenants.start()
            restarting = restarting or (had and self.tenants.dataplane is not None)
            if self.tenants.dataplane is not None:
                self._tasks.append(asyncio.get_running_loop().create_task(self.tenants.run_dataplane_loop()))
        self.speaker.restarting = restarting
        if self.fib is not None:
            self.speaker.add_consumer(self.fib)
        if self.tenants is not None:
            self.speaker.add_consumer(self.tenants)
            self.speaker.set_origin_group(ORIGIN_GROUP, self.tenants.intent.originated_routes())
        await self.speaker.start()
        self._server = await serve(self.api_socket, self.api)

    async def stop(self, graceful: bool) -> None:
        """``graceful`` (SIGTERM): sessions drop without NOTIFICATION and the kernel keeps
        l3fab's routes, so RFC 4724 peers keep forwarding while l3fab comes back.
        Otherwise (SIGUSR1) every kernel object l3fab made is removed."""
        if self._server is not None:
            self._server.close()
        for t in self._tasks:
            t.cancel()
        await self.speaker.stop(graceful=graceful)
        if not graceful:
            if self.fib is not None:
                await self.fib.clear()
            if self.tenants is not None:
                await self.tenants.clear()
        self.worker.close()


__all__ = ["AppConfig", "Daemon", "load_app_config", "parse_app_config", "ConfigError"]
