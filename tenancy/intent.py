"""The Intent API: tenants and endpoints of this node, kept in a state file.

    intent = Intent.load("/var/lib/l3fab/intent.json", node)
    intent.create_tenant("blue", vni=100, families="dual-stack")
    intent.add_endpoint("web0", tenant="blue", interface="tap-web0", ipv4="10.0.0.5")
    intent.endpoint("web0").sid4        # '2001:db8:0:1::100'

Each change is validated against the whole state, allocated, checked by the
optional ``check`` hook (the appliance runs the dataplane's own checks there), written
to the state file atomically, and only then becomes the state in memory.  A rejected
change (an :class:`IntentError`, or a failed write) leaves both exactly as they were.

A change the kernel refuses afterwards is undone with :meth:`Intent.restore` (the
state held before it; the appliance serialises changes, so nothing came in between).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from l3fab.speaker.origination import LocalRoute

from . import changes, store, validate
from .errors import IntentError
from .importing import ImportPolicy
from .model import Endpoint, State, Tenant
from .node import NodeSettings
from .origination import originated_routes
from .validate import InterfaceExists, sysfs_interface_exists
from .views import endpoint_view, endpoint_views, tenant_view, tenant_views

StateCheck = Callable[[State], None]
"""Called with every new state before it is stored; raises IntentError to refuse it."""


class Intent:
    def __init__(self, path: str | os.PathLike[str], node: NodeSettings, state: State | None = None,
                 interface_exists: InterfaceExists = sysfs_interface_exists, check: StateCheck | None = None,
                 ) -> None:
        self.path = Path(path)
        self.node = node
        self.interface_exists = interface_exists
        self.check = check
        self._state = state if state is not None else State()

    @classmethod
    def load(cls, path: str | os.PathLike[str], node: NodeSettings,
             interface_exists: InterfaceExists = sysfs_interface_exists) -> "Intent":
        """Read the state file (none yet: empty intent) and check it whole.
        Interfaces are not checked here: a VM's TAP may appear later."""
        state = store.load(path)
        validate.check_state(state, node)
        return cls(path, node, state, interface_exists)

    @property
    def state(self) -> State:
        return self._state

    def _commit(self, new: State) -> None:
        if self.check is not None:
            self.check(new)  # raises IntentError: refused before anything is stored
        store.save(self.path, new)  # raises IntentError; nothing is replaced then
        self._state = new

    def restore(self, previous: State) -> None:
        """Make ``previous`` (a state this intent held) the state again, on disk and in
        memory: undoes a change the dataplane could not put in place."""
        store.save(self.path, previous)
        self._state = previous

    # ------------------------------------------------------------ changes

    def create_tenant(self, name: str, vni: int | str, families: str = "dual-stack",
                      peers: Any = ()) -> Tenant:
        spec = validate.tenant_spec(name, vni, families, peers)
        self._commit(changes.create_tenant(self._state, self.node, spec))
        return self.tenant(spec.name)

    def set_peers(self, name: str, peers: Any) -> Tenant:
        """Replace the list of tenants ``name`` exchanges routes with."""
        spec = validate.tenant_spec(name, 1, "dual-stack", peers)  # only name and peers are used
        self._commit(changes.set_peers(self._state, spec))
        return self.tenant(spec.name)

    def delete_tenant(self, name: str) -> None:
        self._commit(changes.delete_tenant(self._state, name))

    def add_endpoint(self, name: str, tenant: str, interface: str, ipv4: str | None = None,
                     ipv6: str | None = None, rate_limit: str | int | None = None) -> Endpoint:
        spec = validate.endpoint_spec(name, tenant, interface, ipv4, ipv6, rate_limit)
        self._commit(changes.add_endpoint(self._state, self.node, spec, self.interface_exists))
        return self.endpoint(spec.name)

    def remove_endpoint(self, name: str) -> None:
        self._commit(changes.remove_endpoint(self._state, name))

    # ------------------------------------------------------------ reading

    def tenants(self) -> tuple[Tenant, ...]:
        return tenant_views(self._state, self.node)

    def endpoints(self, tenant: str | None = None) -> tuple[Endpoint, ...]:
        if tenant is not None and tenant not in self._state.tenants:
            raise IntentError("tenant", tenant, "is not a tenant")
        return endpoint_views(self._state, self.node, tenant)

    def tenant(self, name: str) -> Tenant:
        if name not in self._state.tenants:
            raise IntentError("tenant", name, "is not a tenant")
        return tenant_view(self._state, self.node, name)

    def endpoint(self, name: str) -> Endpoint:
        if name not in self._state.endpoints:
            raise IntentError("endpoint", name, "is not an endpoint")
        return endpoint_view(self._state, self.node, name)

    def originated_routes(self) -> list[LocalRoute]:
        return originated_routes(self.node, self.endpoints())

    def import_policy(self) -> ImportPolicy:
        return ImportPolicy(self.node, self.tenants(), self.endpoints())

    def to_dict(self) -> dict[str, Any]:
        return {"locator": self.node.locator, "router_id": self.node.router_id, "fabric_asn": self.node.fabric_asn,
                "tenants": [t.to_dict() for t in self.tenants()],
                "endpoints": [e.to_dict() for e in self.endpoints()]}
