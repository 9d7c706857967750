"""The tenant plane's API methods, one function per request (registered by
:func:`tenancy_handlers`): intent changes (``tenant_*``, ``endpoint_*``) and the
views behind ``show vrf|endpoints|dataplane|fib --vrf``.

An intent change is validated and stored first (an :class:`IntentError` leaves
everything as it was), then originated through the speaker and plumbed by the
dataplane on the kernel worker; the request answers when the kernel is done, and
the event loop runs meanwhile.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from l3fab.speaker.api import Handler, Params
from l3fab.speaker.server import Speaker

from .tenant_plane import TenantPlane

ORIGIN_GROUP = "tenancy"


async def _applied(plane: TenantPlane, speaker: Speaker, out: Any) -> Any:
    speaker.set_origin_group(ORIGIN_GROUP, plane.intent.originated_routes())
    await plane.sync()
    return out.to_dict() if out is not None else {"done": True}


async def tenant_create(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    out = plane.intent.create_tenant(p.get("name"), p.get("vni"), p.get("families") or "dual-stack",
                                     p.get("peers") or ())
    return await _applied(plane, speaker, out)


async def tenant_peers(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    return await _applied(plane, speaker, plane.intent.set_peers(p.get("name"), p.get("peers") or ()))


async def tenant_delete(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    plane.intent.delete_tenant(p.get("name"))
    return await _applied(plane, speaker, None)


async def endpoint_add(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    out = plane.intent.add_endpoint(p.get("name"), p.get("tenant"), p.get("interface"), p.get("ipv4"),
                                    p.get("ipv6"), p.get("rate_limit"))
    return await _applied(plane, speaker, out)


async def endpoint_remove(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    plane.intent.remove_endpoint(p.get("name"))
    return await _applied(plane, speaker, None)


def tenant_list(plane: TenantPlane, p: Params) -> Any:
    return [t.to_dict() for t in plane.intent.tenants()]


def tenant_show(plane: TenantPlane, p: Params) -> Any:
    return plane.intent.tenant(p.get("name")).to_dict()


def endpoint_list(plane: TenantPlane, p: Params) -> Any:
    return [e.to_dict() for e in plane.intent.endpoints(p.get("tenant"))]


def endpoint_show(plane: TenantPlane, p: Params) -> Any:
    return plane.intent.endpoint(p.get("name")).to_dict()


def vrfs(plane: TenantPlane, p: Params) -> Any:
    return plane.vrfs()


def vrf_rejected(plane: TenantPlane, p: Params) -> Any:
    return plane.rejected()


async def endpoints(plane: TenantPlane, p: Params) -> Any:
    return await plane.endpoints(p.get("tenant"))


async def dataplane(plane: TenantPlane, p: Params) -> Any:
    return await plane.summary()


async def vrf_fib(plane: TenantPlane, p: Params) -> Any:
    return await plane.fib(str(p["vrf"]))


def tenancy_handlers(plane: TenantPlane, speaker: Speaker) -> dict[str, Handler]:
    """The tenant plane's methods (``vrf_fib`` serves ``fib`` with a ``vrf`` parameter)."""
    changes = {f.__name__: partial(f, plane, speaker)
               for f in (tenant_create, tenant_peers, tenant_delete, endpoint_add, endpoint_remove)}
    views = {f.__name__: partial(f, plane)
             for f in (tenant_list, tenant_show, endpoint_list, endpoint_show, vrfs, vrf_rejected, endpoints,
                       dataplane, vrf_fib)}
    return {**changes, **views}


__all__ = ["tenancy_handlers", "ORIGIN_GROUP"]
