"""Import/export policy (sans-IO): prefix lists, terms of match + set + action, roles.

``parse_policy_config`` turns the ``prefix-lists:`` and ``policies:`` config into
:class:`Policy` objects; ``Policy.evaluate(path, ctx)`` decides one route.  The
language is described for operators in docs/policy.md.
"""
from .actions import Action, EvalContext, NextHopDirective
from .match import Match
from .parse import parse_policy, parse_policy_config, parse_prefix_lists
from .policy import Policy, PolicyConfig, PolicyResult, Term
from .prefix_list import PrefixEntry, PrefixList

__all__ = ["Action", "EvalContext", "Match", "NextHopDirective", "Policy", "PolicyConfig",
           "PolicyResult", "PrefixEntry", "PrefixList", "Term", "parse_policy", "parse_policy_config",
           "parse_prefix_lists"]
