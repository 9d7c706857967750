"""The tenant plane's API methods, one function per request (registered by
:func:`tenancy_handlers`): intent changes (``tenant_*``, ``endpoint_*``) and the
views behind ``show vrf|endpoints|dataplane|fib --vrf``.

An intent change is validated (by the intent and by the dataplane's own checks) and
stored first, on the kernel worker (an :class:`IntentError` leaves everything as it
was; the state file's fsync never holds the event loop), then plumbed by
the dataplane on the kernel worker and originated through the speaker; the request
answers when the kernel is done, and the event loop runs meanwhile.

Fail closed: when the kernel refuses the nftables filter for the change, the change
is undone (the previous intent is stored again and plumbed; the previous filter never
left) and the request is refused with nft's reason, in one line.  Changes run one at
a time, so undoing one never undoes another.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from l3fab.speaker.api import Handler, Params
from l3fab.speaker.server import Speaker
from l3fab.tenancy.errors import IntentError

from .tenant_plane import DataplaneRefused, TenantPlane

ORIGIN_GROUP = "tenancy"


def _arg(p: Params, key: str) -> Any:
    """A request parameter as sent (None when absent): the intent validates it, so any
    JSON value may arrive here and a wrong or missing one becomes an IntentError."""
    return p.get(key)


async def _change(plane: TenantPlane, speaker: Speaker, where: str, change: Callable[[], Any]) -> Any:
    """Run one intent change (``change`` validates and stores it), plumb it, originate
    what the stored intent says; undo it when the kernel refuses its filter."""
    async with plane.changing:
        before = plane.intent.state
        # validated and stored (an fsync) on the worker: never in the event loop
        out = await plane.worker.run(change)  # IntentError: nothing was stored
        try:
            await plane.apply_change()
        except DataplaneRefused as e:
            await plane.worker.run(plane.intent.restore, before)
            await plane.sync()  # the previous intent, plumbed again (its filter is still in place)
            raise IntentError(where, None, "", message=f"{where}: refused, the change is not kept: {e}") from None
        finally:
            speaker.set_origin_group(ORIGIN_GROUP, plane.intent.originated_routes())
        return out.to_dict() if out is not None else {"done": True}


def _where(kind: str, p: Params) -> str:
    """``endpoints[web1]`` (used once the change validated the name, so it is printable)."""
    return f"{kind}[{_arg(p, 'name')}]"


async def tenant_create(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    return await _change(plane, speaker, _where("tenants", p), lambda: plane.intent.create_tenant(
        _arg(p, "name"), _arg(p, "vni"), _arg(p, "families") or "dual-stack", _arg(p, "peers") or ()))


async def tenant_peers(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    return await _change(plane, speaker, _where("tenants", p),
                         lambda: plane.intent.set_peers(_arg(p, "name"), _arg(p, "peers") or ()))


async def tenant_delete(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    return await _change(plane, speaker, _where("tenants", p), lambda: plane.intent.delete_tenant(_arg(p, "name")))


async def endpoint_add(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    return await _change(plane, speaker, _where("endpoints", p), lambda: plane.intent.add_endpoint(
        _arg(p, "name"), _arg(p, "tenant"), _arg(p, "interface"), _arg(p, "ipv4"), _arg(p, "ipv6"),
        _arg(p, "rate_limit")))


async def endpoint_remove(plane: TenantPlane, speaker: Speaker, p: Params) -> Any:
    return await _change(plane, speaker, _where("endpoints", p),
                         lambda: plane.intent.remove_endpoint(_arg(p, "name")))


def tenant_list(plane: TenantPlane, p: Params) -> Any:
    return [t.to_dict() for t in plane.intent.tenants()]


def tenant_show(plane: TenantPlane, p: Params) -> Any:
    return plane.intent.tenant(_arg(p, "name")).to_dict()


def endpoint_list(plane: TenantPlane, p: Params) -> Any:
    return [e.to_dict() for e in plane.intent.endpoints(_arg(p, "tenant"))]


def endpoint_show(plane: TenantPlane, p: Params) -> Any:
    return plane.intent.endpoint(_arg(p, "name")).to_dict()


def vrfs(plane: TenantPlane, p: Params) -> Any:
    return plane.vrfs()


def vrf_rejected(plane: TenantPlane, p: Params) -> Any:
    return plane.rejected()


async def endpoints(plane: TenantPlane, p: Params) -> Any:
    return await plane.endpoints(_arg(p, "tenant"))


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
