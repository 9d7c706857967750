"""Policies: ordered terms evaluated against one path, first deciding term wins.

Evaluation is pure: a :class:`Path` in, a :class:`PolicyResult` out.  A term whose
match holds applies its sets, then its action decides (``accept``/``reject``) or
passes the modified path on to the next term (``next``).  When no term decides, the
policy's default does, with the sets of any ``next`` terms kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from ..table.path import Path
from .actions import DEFAULT_CONTEXT, Action, EvalContext, NextHopDirective, SetOperation, apply_sets
from .match import Match
from .prefix_list import PrefixList


class PolicyResult(NamedTuple):
    """The outcome for one path (a tuple: built for every route received).

    ``path`` is the path with the sets applied (on rejection: as far as evaluation got).
    ``term`` names the deciding term, ``None`` when the policy's default decided.
    ``next_hop`` is set when a term asked for ``next-hop: self`` or ``unchanged``.
    """

    accepted: bool
    path: Path
    term: str | None = None
    next_hop: NextHopDirective | None = None

    @property
    def decided_by(self) -> str:
        """For ``show`` output: the term's name, or ``default``."""
        return self.term if self.term is not None else "default"


@dataclass(frozen=True, slots=True)
class Term:
    name: str
    match: Match
    action: Action
    sets: tuple[SetOperation, ...] = ()
    next_hop: NextHopDirective | None = None
    sets_next_hop: bool = False  # any next-hop set: an address clears an earlier directive


@dataclass(frozen=True)
class Policy:
    name: str
    terms: tuple[Term, ...]
    default_accept: bool = False
    # per term: (match test or None for "always", sets, decision: True/False/None for next, term)
    _steps: tuple[tuple[Callable[[Path], bool] | None, tuple[SetOperation, ...], bool | None, Term], ...] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        decision = {Action.ACCEPT: True, Action.REJECT: False, Action.NEXT: None}
        object.__setattr__(self, "_steps", tuple(
            (term.match.compiled(), term.sets, decision[term.action], term) for term in self.terms))

    def evaluate(self, path: Path, ctx: EvalContext = DEFAULT_CONTEXT) -> PolicyResult:
        directive = None
        for test, sets, decision, term in self._steps:
            if test is not None and not test(path):
                continue
            if sets:
                path = apply_sets(path, sets, ctx)
            if term.sets_next_hop:
                directive = term.next_hop
            if decision is not None:
                return PolicyResult(decision, path, term.name, directive)
        return PolicyResult(self.default_accept, path, None, directive)


@dataclass(frozen=True)
class PolicyConfig:
    """The ``prefix-lists:`` and ``policies:`` of a node config, by name."""

    prefix_lists: dict[str, PrefixList]
    policies: dict[str, Policy]

    def policy(self, name: str) -> Policy | None:
        return self.policies.get(name)
