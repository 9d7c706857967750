"""Tenants, endpoints and their allocations (SIDs, RDs, RTs, table ids): the
node's intent, persisted in a state file, and the policies derived from it.
Sans-IO except for :mod:`tenancy.store` (the state file) and the default
interface check in :mod:`tenancy.validate`."""
from .errors import IntentError
from .importing import ImportDecision, ImportPolicy, decide_import
from .intent import Intent
from .model import Endpoint, Tenant
from .node import NodeSettings
from .origination import originated_routes
from .peering import effective_peers, peering_effective

__all__ = ["Endpoint", "ImportDecision", "ImportPolicy", "Intent", "IntentError", "NodeSettings", "Tenant",
           "decide_import", "effective_peers", "originated_routes", "peering_effective"]
