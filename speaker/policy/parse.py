"""The policy language's config schema: ``prefix-lists:`` and ``policies:`` in, compiled
:class:`PolicyConfig` out.  The schema is described for operators in docs/policy.md.

Every problem is one :class:`speaker.config.ConfigError` naming the field, e.g.
``policies.from-host11.terms[1].match.next-hop-in: 'nope' is not a prefix-list or prefix``.
"""
from __future__ import annotations

import ipaddress
import re
import struct
from typing import Any, Callable, NoReturn, TypeVar

from ..errors import ConfigError
from ..fields import asn as parse_asn, check_keys, integer, ip_address, string
from ..wire.attributes import (
    ORIGIN_WORDS,
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    LocalPref,
    Med,
    Origin,
    parse_community,
)
from ..wire.constants import Family
from ..wire.extcommunity import (
    SUBTYPE_ROUTE_TARGET,
    TYPE_FOUR_OCTET_AS,
    TYPE_TWO_OCTET_AS,
    ExtCommunity,
    route_target,
)
from ..wire.nlri import Prefix
from ..wire.rd import RouteDistinguisher
from .actions import (
    Action,
    AsPathPrepend,
    EditList,
    NextHopDirective,
    SetAttribute,
    SetNextHop,
    SetOperation,
)
from .match import (
    AsPathContains,
    AsPathLength,
    AsPathRegex,
    AnyOf,
    Condition,
    FamilyIn,
    Match,
    NextHopIn,
    OriginIn,
    PrefixIn,
    RdIn,
    SourceIn,
    communities_of,
    ext_communities_of,
    large_communities_of,
)
from .policy import Policy, PolicyConfig, Term
from .prefix_list import PrefixEntry, PrefixList

_TOP_KEYS = {"prefix-lists", "policies"}
_POLICY_KEYS = {"default", "description", "terms"}
_TERM_KEYS = {"name", "description", "match", "set", "action"}
_ENTRY_KEYS = {"prefix", "ge", "le"}
_EDIT_KEYS = {"add", "remove", "replace"}
_U32 = 0xFFFFFFFF
_WIDTH = {4: 32, 6: 128}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # with fullmatch ("$" accepts a final newline)
_YAML_NUMBER_HINT = ("is a number: quote it (\"65000:11\"); YAML reads unquoted "
                     "65000:11 as a base-60 number")


T = TypeVar("T")


def _fail(path: str, value: Any, problem: str) -> NoReturn:
    raise ConfigError(path, value, problem)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mapping(path: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        _fail(path, v, "is not a mapping")
    return v


def _check_keys(path: str, d: dict[str, Any], allowed: set[str]) -> None:
    check_keys(path, d, allowed)


def _items(path: str, v: Any) -> list[tuple[str, Any]]:
    """A scalar or a non-empty list, as ``(field path, item)`` pairs."""
    if not isinstance(v, list):
        return [(path, v)]
    if not v:
        _fail(path, v, "is an empty list")
    return [(f"{path}[{i}]", item) for i, item in enumerate(v)]


def _name(path: str, v: Any, what: str) -> str:
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        where = path.replace(v, repr(v)[1:-1]) if isinstance(v, str) and v else path  # the name is in the path
        _fail(where, v, f"is not a {what} name (letters, digits, '-', '_', '.', ':')")
    return v


def _text_item(path: str, v: Any, parse: Callable[[str], T], what: str) -> T:
    """Parse one community-like item, refusing YAML's base-60 integers."""
    if isinstance(v, bool) or isinstance(v, int):
        _fail(path, v, _YAML_NUMBER_HINT)
    if not isinstance(v, str):
        _fail(path, v, f"is not {what}")
    try:
        return parse(v)
    except ValueError:
        _fail(path, v, f"is not {what}")


def _community(path: str, v: Any) -> int:
    return _text_item(path, v, parse_community, "a community (AA:NN or a well-known name)")


def _large_community(path: str, v: Any) -> LargeCommunity:
    return _text_item(path, v, LargeCommunity.parse, "a large community (A:B:C)")


# ---------------------------------------------------------------- prefixes


def _prefix(path: str, v: Any) -> Prefix:
    """A prefix with no host bits set (``10.0.0.1/8`` is refused: it is a typo more often
    than not).  An address alone is a host prefix."""
    if not isinstance(v, str):
        _fail(path, v, "is not an IPv4 or IPv6 prefix")
    text = v.strip()
    try:
        return Prefix.parse(str(ipaddress.ip_network(text, strict=True)))
    except (TypeError, ValueError):
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError):
        _fail(path, v, "is not an IPv4 or IPv6 prefix")
    _fail(path, v, f"has host bits set (the network is {loose})")


def _entry(path: str, v: Any) -> PrefixEntry:
    if isinstance(v, str):
        return PrefixEntry.exact(_prefix(path, v))
    if not isinstance(v, dict):
        _fail(path, v, "is not a prefix or {prefix, ge, le}")
    _check_keys(path, v, _ENTRY_KEYS)
    if "prefix" not in v:
        _fail(_join(path, "prefix"), None, "is required")
    p = _prefix(_join(path, "prefix"), v["prefix"])
    width = _WIDTH[4 if p.afi == 1 else 6]
    ge = integer(_join(path, "ge"), v["ge"], p.length, width) if "ge" in v else None
    le = integer(_join(path, "le"), v["le"], p.length, width) if "le" in v else None
    if ge is None and le is None:
        return PrefixEntry.exact(p)
    ge = p.length if ge is None else ge
    le = width if le is None else le
    if ge > le:
        _fail(_join(path, "le"), le, f"is below ge {ge}")
    return PrefixEntry(p, ge, le)


def _entries(path: str, v: Any) -> tuple[PrefixEntry, ...]:
    return tuple(_entry(p, item) for p, item in _items(path, v))


def parse_prefix_lists(data: Any, path: str = "prefix-lists") -> dict[str, PrefixList]:
    out: dict[str, PrefixList] = {}
    for name, v in _mapping(path, data).items():
        where = _join(path, str(name))
        _name(where, name, "prefix-list")
        try:
            ipaddress.ip_network(name, strict=False)
        except ValueError:
            pass
        else:
            _fail(where, name, "looks like a prefix; a prefix-list name must not")
        if not isinstance(v, list):
            _fail(where, v, "is not a list of prefixes")
        out[name] = PrefixList(name, _entries(where, v))
    return out


# ---------------------------------------------------------------- match


def _lists(path: str, v: Any, prefix_lists: dict[str, PrefixList]) -> PrefixList:
    merged = PrefixList("", ())
    for p, name in _items(path, v):
        if name not in prefix_lists:
            known = ", ".join(sorted(prefix_lists)) or "none"
            _fail(p, name, f"is not a defined prefix-list (defined: {known})")
        merged = merged + prefix_lists[name]
    return merged


def _networks(path: str, v: Any, prefix_lists: dict[str, PrefixList]) -> PrefixList:
    """Prefix-list names and prefixes, mixed: the networks an address may lie in."""
    merged = PrefixList("", ())
    for p, item in _items(path, v):
        if isinstance(item, str) and item in prefix_lists:
            merged = merged + prefix_lists[item]
            continue
        try:
            pfx = _prefix(p, item)
        except ConfigError:
            _fail(p, item, "is not a prefix-list or prefix")
        merged = merged + PrefixList("", (PrefixEntry.exact(pfx),))
    return merged


def _alias(ec: ExtCommunity) -> ExtCommunity | None:
    """The same ASN:NN route target in the other AS-specific encoding, if it fits."""
    aa = ec.admin_assigned()
    assert aa is not None  # route targets are AS or IPv4 address specific
    asn, num = aa
    if ec.type == TYPE_TWO_OCTET_AS and num <= 0xFFFF:
        return ExtCommunity(TYPE_FOUR_OCTET_AS, ec.subtype, struct.pack("!IH", asn, num))
    if ec.type == TYPE_FOUR_OCTET_AS and isinstance(asn, int) and asn <= 0xFFFF:
        return ExtCommunity(TYPE_TWO_OCTET_AS, ec.subtype, struct.pack("!HI", asn, num))
    return None


def _route_target(path: str, v: Any) -> ExtCommunity:
    ec = _text_item(path, v, route_target, "a route target (ASN:NN, A.B.C.D:NN, target:ASN:NN)")
    if ec.subtype != SUBTYPE_ROUTE_TARGET:
        _fail(path, v, "is not a route target (ASN:NN, A.B.C.D:NN, target:ASN:NN)")
    return ec


def _match_route_targets(path: str, v: Any) -> frozenset[ExtCommunity]:
    """Route targets to match, each also in its other encoding: 65000:100 as a two-octet-AS
    or a four-octet-AS extended community is the same target to an operator."""
    out = set()
    for p, item in _items(path, v):
        ec = _route_target(p, item)
        out.add(ec)
        alias = _alias(ec)
        if alias is not None:
            out.add(alias)
    return frozenset(out)


def _match_rds(path: str, v: Any) -> frozenset[RouteDistinguisher]:
    out = set()
    for p, item in _items(path, v):
        rd = _text_item(p, item, RouteDistinguisher.parse, "a route distinguisher (ASN:NN or A.B.C.D:NN)")
        out.add(rd)
        if rd.type == 0 and rd.assigned <= 0xFFFF:
            out.add(RouteDistinguisher(2, rd.admin, rd.assigned))
        elif rd.type == 2 and isinstance(rd.admin, int) and rd.admin <= 0xFFFF:  # type 2: admin is an ASN
            out.add(RouteDistinguisher(0, rd.admin, rd.assigned))
    return frozenset(out)


def _families(path: str, v: Any) -> frozenset[Family]:
    out = set()
    for p, item in _items(path, v):
        try:
            out.add(Family.parse(str(item)))
        except ValueError:
            _fail(p, item, "is not a family (ipv4, ipv6, vpnv4, vpnv6)")
    return frozenset(out)


def _origin(path: str, v: Any) -> int:
    if not isinstance(v, str) or v.strip().lower() not in ORIGIN_WORDS:
        _fail(path, v, "is not an origin (igp, egp, incomplete)")
    return ORIGIN_WORDS[v.strip().lower()]


def _regexes(path: str, v: Any) -> tuple[re.Pattern[str], ...]:
    out = []
    for p, item in _items(path, v):
        if not isinstance(item, str):
            _fail(p, item, "is not a regular expression")
        try:
            out.append(re.compile(item))
        except re.error as e:
            _fail(p, item, f"is not a valid regular expression ({e})")
    return tuple(out)


def _as_path_length(path: str, v: Any) -> AsPathLength:
    if isinstance(v, int) and not isinstance(v, bool):
        n = integer(path, v, 0, 65535)
        return AsPathLength(n, n)
    d = _mapping(path, v)
    _check_keys(path, d, {"eq", "ge", "le"})
    if not d:
        _fail(path, v, "needs eq, ge or le")
    if "eq" in d:
        if len(d) > 1:
            _fail(path, v, "combines eq with ge or le")
        n = integer(_join(path, "eq"), d["eq"], 0, 65535)
        return AsPathLength(n, n)
    ge = integer(_join(path, "ge"), d.get("ge", 0), 0, 65535)
    le = integer(_join(path, "le"), d.get("le", 65535), 0, 65535)
    if ge > le:
        _fail(_join(path, "le"), le, f"is below ge {ge}")
    return AsPathLength(ge, le)


def _strings(path: str, v: Any) -> frozenset[str]:
    return frozenset(string(p, item) for p, item in _items(path, v))


# Cheap conditions first: a failing family or source check saves the prefix lookup.
_MATCH_PARSERS: dict[str, Callable[[str, Any, dict[str, PrefixList]], Condition]] = {
    "family": lambda p, v, pl: FamilyIn(_families(p, v)),
    "source": lambda p, v, pl: SourceIn(_strings(p, v)),
    "origin": lambda p, v, pl: OriginIn(frozenset(_origin(q, i) for q, i in _items(p, v))),
    "rd": lambda p, v, pl: RdIn(_match_rds(p, v)),
    "prefix-list": lambda p, v, pl: PrefixIn(_lists(p, v, pl)),
    "prefix": lambda p, v, pl: PrefixIn(PrefixList("", _entries(p, v))),
    "next-hop-in": lambda p, v, pl: NextHopIn(_networks(p, v, pl)),
    "route-target": lambda p, v, pl: AnyOf(_match_route_targets(p, v), ext_communities_of),
    "community": lambda p, v, pl: AnyOf(frozenset(
        _community(q, i) for q, i in _items(p, v)), communities_of),
    "large-community": lambda p, v, pl: AnyOf(frozenset(
        _large_community(q, i) for q, i in _items(p, v)), large_communities_of),
    "as-path-length": lambda p, v, pl: _as_path_length(p, v),
    "as-path-contains": lambda p, v, pl: AsPathContains(frozenset(parse_asn(q, i) for q, i in _items(p, v))),
    "as-path-regex": lambda p, v, pl: AsPathRegex(_regexes(p, v)),
}


def parse_match(data: Any, prefix_lists: dict[str, PrefixList], path: str = "match") -> Match:
    if data is None:
        return Match()
    d = _mapping(path, data)
    _check_keys(path, d, set(_MATCH_PARSERS))
    return Match(tuple(parse(_join(path, key), d[key], prefix_lists)
                       for key, parse in _MATCH_PARSERS.items() if key in d))


# ---------------------------------------------------------------- set


def _edit(path: str, v: Any, attribute: type[Communities | LargeCommunities | ExtendedCommunities],
          parse_item: Callable[[str, Any], Any]) -> EditList:
    d = _mapping(path, v)
    _check_keys(path, d, _EDIT_KEYS)
    if not d:
        _fail(path, v, "needs add, remove or replace")
    if "replace" in d and len(d) > 1:
        _fail(_join(path, "replace"), d["replace"], "cannot be combined with add or remove")

    def values(key: str) -> tuple[Any, ...]:
        raw = d[key]
        if raw == []:
            return ()
        return tuple(dict.fromkeys(parse_item(p, item) for p, item in _items(_join(path, key), raw)))

    if "replace" in d:
        return EditList(attribute, replace=values("replace"))
    remove_all = d.get("remove") == "all"
    remove = frozenset(values("remove")) if "remove" in d and not remove_all else frozenset()
    add = values("add") if "add" in d else ()
    return EditList(attribute, add=add, remove=remove, remove_all=remove_all)


def _next_hop(path: str, v: Any) -> tuple[SetNextHop | None, NextHopDirective | None]:
    if isinstance(v, str) and v.strip().lower() in ("self", "unchanged"):
        return None, NextHopDirective(v.strip().lower())
    try:
        return SetNextHop(ip_address(path, v)), None
    except ConfigError:
        _fail(path, v, "is not an IP address, 'self' or 'unchanged'")


def _prepend(path: str, v: Any) -> AsPathPrepend:
    if isinstance(v, int) and not isinstance(v, bool):
        return AsPathPrepend(integer(path, v, 1, 32))
    d = _mapping(path, v)
    _check_keys(path, d, {"asn", "count"})
    count = integer(_join(path, "count"), d.get("count", 1), 1, 32)
    asn = parse_asn(_join(path, "asn"), d["asn"]) if "asn" in d else None
    return AsPathPrepend(count, asn)


def _u32(path: str, v: Any) -> int:
    return integer(path, v, 0, _U32)


_SET_PARSERS: dict[str, Callable[[str, Any], SetOperation]] = {
    "local-pref": lambda p, v: SetAttribute(LocalPref(_u32(p, v))),
    "med": lambda p, v: SetAttribute(Med(_u32(p, v))),
    "origin": lambda p, v: SetAttribute(Origin(_origin(p, v))),
    "communities": lambda p, v: _edit(p, v, Communities, _community),
    "large-communities": lambda p, v: _edit(p, v, LargeCommunities, _large_community),
    "route-targets": lambda p, v: _edit(p, v, ExtendedCommunities, _route_target),
    "as-path-prepend": _prepend,
}


def parse_sets(data: Any, path: str = "set") -> tuple[tuple[SetOperation, ...], bool, NextHopDirective | None]:
    """The ``set:`` block: operations, whether next-hop was set, and its directive."""
    if data is None:
        return (), False, None
    d = _mapping(path, data)
    _check_keys(path, d, set(_SET_PARSERS) | {"next-hop"})
    ops = [parse(_join(path, key), d[key]) for key, parse in _SET_PARSERS.items() if key in d]
    directive = None
    if "next-hop" in d:
        op, directive = _next_hop(_join(path, "next-hop"), d["next-hop"])
        if op is not None:
            ops.append(op)
    return tuple(ops), "next-hop" in d, directive


# ---------------------------------------------------------------- terms and policies


def _action(path: str, v: Any) -> Action:
    try:
        return Action(v)
    except ValueError:
        _fail(path, v, "is not an action (accept, reject, next)")


def parse_term(data: Any, prefix_lists: dict[str, PrefixList], path: str, index: int = 0) -> Term:
    d = _mapping(path, data)
    _check_keys(path, d, _TERM_KEYS)
    name = _name(_join(path, "name"), d["name"], "term") if "name" in d else f"term-{index + 1}"
    if "description" in d:
        string(_join(path, "description"), d["description"])
    if "action" not in d:
        _fail(_join(path, "action"), None, "is required (accept, reject or next)")
    match = parse_match(d.get("match"), prefix_lists, _join(path, "match"))
    sets, sets_nh, directive = parse_sets(d.get("set"), _join(path, "set"))
    return Term(name, match, _action(_join(path, "action"), d["action"]), sets, directive, sets_nh)


def parse_policy(name: str, data: Any, prefix_lists: dict[str, PrefixList] | None = None,
                 path: str | None = None) -> Policy:
    """One policy body (``default``, ``terms``); ``path`` defaults to ``policies.NAME``."""
    path = f"policies.{name}" if path is None else path
    prefix_lists = prefix_lists or {}
    d = _mapping(path, data)
    _check_keys(path, d, _POLICY_KEYS)
    default = d.get("default", "reject")
    if default not in ("accept", "reject"):
        _fail(_join(path, "default"), default, "is not accept or reject")
    if "description" in d:
        string(_join(path, "description"), d["description"])
    raw_terms = d.get("terms") or []
    if not isinstance(raw_terms, list):
        _fail(_join(path, "terms"), raw_terms, "is not a list")
    terms: list[Term] = []
    for i, t in enumerate(raw_terms):
        where = f"{_join(path, 'terms')}[{i}]"
        term = parse_term(t, prefix_lists, where, i)
        for j, earlier in enumerate(terms):
            if earlier.name == term.name:
                _fail(_join(where, "name"), term.name, f"is already the name of terms[{j}]")
        terms.append(term)
    return Policy(name, tuple(terms), default == "accept")


def parse_policy_config(data: Any, path: str = "") -> PolicyConfig:
    """Validate ``{prefix-lists: ..., policies: ...}`` (both optional) from a parsed YAML
    document; ``path`` prefixes the field names in errors."""
    if data is None:
        return PolicyConfig({}, {})
    d = _mapping(path or "(top level)", data)
    _check_keys(path, d, _TOP_KEYS)
    prefix_lists = parse_prefix_lists(d.get("prefix-lists") or {}, _join(path, "prefix-lists"))
    policies_path = _join(path, "policies")
    policies = {}
    for name, body in _mapping(policies_path, d.get("policies") or {}).items():
        where = _join(policies_path, str(name))
        _name(where, name, "policy")
        policies[name] = parse_policy(name, body, prefix_lists, where)
    return PolicyConfig(prefix_lists, policies)
