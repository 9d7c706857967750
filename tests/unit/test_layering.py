"""Architecture rules, checked on the source text (``ast``, nothing is imported).

The seven folders install under one import root (pyproject ``package-dir``):
``speaker/`` is ``l3fab.speaker``, ``cli/`` is ``l3fab.cli`` and so on.  Every
``.py`` under them is parsed (except the generated ``lab/peers/gobgp_api``) and:

1. every absolute import of project code goes through ``l3fab.`` (``from speaker.x
   import y`` or ``import cli`` would load a second copy of the module);
2. the graph between the seven packages, built from every import (relative ones
   resolved, function-level and ``TYPE_CHECKING`` ones included), has no cycle;
3. the module graph inside ``l3fab.speaker`` (every import, relative ones resolved;
   ``from . import x`` imports the module ``x``) has no cycle either;
4. every edge between packages is in :data:`ALLOWED` below;
5. no project import (``l3fab.*`` or relative) sits inside a ``def``/``class`` body:
   it hides cycles.  Module-level ``if TYPE_CHECKING:`` imports are fine, and so are
   stdlib / third-party imports inside functions (optional dependencies like grpc).

Each failure message lists every offending ``file:line``.  ``test_checker_*`` feed
the same functions synthetic modules so the checker cannot silently pass.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = "l3fab"

# Allowed package -> package import edges (anything not listed here is a failure).
# speaker is the BGP library and sits at the bottom; cli sits on top of everything.
ALLOWED: dict[str, frozenset[str]] = {
    # libraries: speaker (BGP) and fib (kernel FIB) stand alone; dataplane drives the
    # kernel through fib; tenancy (the intent) borrows the speaker's wire types.  What
    # joins them (FIB feed, tenant plane, VRF import, daemon) is the appliance, cli/app/.
    "speaker": frozenset(),
    "fib": frozenset(),
    "dataplane": frozenset({"fib"}),
    "tenancy": frozenset({"speaker"}),
    "lab": frozenset({"speaker", "fib", "tenancy", "dataplane"}),  # never cli
    "bench": frozenset({"speaker", "fib", "tenancy", "dataplane", "lab"}),  # anything but cli
    "cli": frozenset({"speaker", "fib", "tenancy", "dataplane", "lab", "bench"}),  # anything
}
PACKAGES: tuple[str, ...] = ("speaker", "fib", "tenancy", "dataplane", "cli", "lab", "bench")
SKIP = ("lab/peers/gobgp_api",)  # generated gRPC stubs
LIBRARY = f"{ROOT}.speaker"  # rule 3: no module-level cycle inside it

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------
# The scanner

@dataclass(frozen=True)
class Import:
    """One imported project module (a statement importing several gives several)."""

    path: str  # importing file, relative to the repository
    line: int
    source: str  # importing module, e.g. l3fab.speaker.policy.parse
    target: str  # resolved module, e.g. l3fab.speaker.config
    relative: bool
    bad_root: bool  # absolute import of a project folder without the l3fab. root
    nested: bool  # inside a def/class body
    type_checking: bool  # under a module-level ``if TYPE_CHECKING:``
    text: str  # the statement, for messages

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    is_package: bool
    source: str


def module_name(relpath: str) -> tuple[str, bool]:
    """``speaker/policy/parse.py`` -> (``l3fab.speaker.policy.parse``, False)."""
    parts = relpath[: -len(".py")].split("/")
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join([ROOT, *parts]), is_package


def package_of(module: str) -> str | None:
    """``l3fab.speaker.wire.nlri`` -> ``speaker``; None for the bare root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == ROOT else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


_BODIES = ("body", "orelse", "finalbody")  # of for/while/with/try; handlers and match cases apart


def _statement(lines: list[str], node: ast.stmt) -> str:
    """The statement's source on one line, for messages."""
    text = " ".join(" ".join(lines[node.lineno - 1: node.end_lineno]).split())
    text = text.partition(" #")[0] if "#" in text else text
    return text if len(text) <= 100 else text[:97] + "..."


def scan_module(module: Module, known: frozenset[str]) -> list[Import]:
    """Every project import in ``module``'s source; ``known`` is every project module name."""
    tree = ast.parse(module.source, filename=module.path)
    lines = module.source.splitlines()
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found: list[Import] = []

    def project(name: str) -> tuple[str, bool] | None:
        """An absolute dotted name -> (module under l3fab., missing root?) or None if not ours."""
        top = name.partition(".")[0]
        if top == ROOT:
            return name, False
        if top in PACKAGES:
            return f"{ROOT}.{name}", True
        return None

    def add(node: ast.stmt, target: str, relative: bool, bad_root: bool, nested: bool, tc: bool) -> None:
        found.append(Import(module.path, node.lineno, module.name, target, relative, bad_root,
                            nested, tc, _statement(lines, node)))

    def record(node: ast.Import | ast.ImportFrom, nested: bool, tc: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = project(alias.name)
                if hit:
                    add(node, hit[0], False, hit[1], nested, tc)
            return
        if node.level:
            parts = package.split(".")
            up = node.level - 1
            if up >= len(parts):  # above the l3fab root: cannot resolve, counts as a bad import
                add(node, f"{ROOT}.<beyond-top-level>", True, True, nested, tc)
                return
            base = ".".join(parts[: len(parts) - up] + ([node.module] if node.module else []))
            relative, bad_root = True, False
        else:
            hit = project(node.module or "")
            if not hit:
                return
            base, bad_root = hit
            relative = False
        for alias in node.names:
            # ``from pkg import x`` imports the module pkg.x when there is one, else pkg itself
            sub = f"{base}.{alias.name}"
            add(node, sub if alias.name != "*" and sub in known else base, relative, bad_root, nested, tc)

    def visit(body: list[ast.stmt], nested: bool, tc: bool) -> None:
        # imports are statements: walk statement lists only, never into expressions
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                record(stmt, nested, tc)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(stmt.body, True, tc)
            elif isinstance(stmt, ast.If):
                visit(stmt.body, nested, tc or (not nested and _is_type_checking(stmt.test)))
                visit(stmt.orelse, nested, tc)
            else:
                for field in _BODIES:
                    visit(getattr(stmt, field, None) or [], nested, tc)
                for part in getattr(stmt, "handlers", None) or getattr(stmt, "cases", None) or []:
                    visit(part.body, nested, tc)

    visit(tree.body, False, False)
    return found


def scan(modules: Iterable[Module], known: Iterable[str] = ()) -> list[Import]:
    modules = list(modules)
    names = frozenset(known) | {m.name for m in modules}
    return [imp for m in modules for imp in scan_module(m, names)]


@functools.cache
def project_modules() -> tuple[tuple[Module, ...], frozenset[str]]:
    """(the parsed modules, every module name including the skipped generated ones)."""
    modules, known = [], set()
    for pkg in PACKAGES:
        for file in sorted((REPO / pkg).rglob("*.py")):
            rel = file.relative_to(REPO).as_posix()
            name, is_package = module_name(rel)
            known.add(name)
            if any(rel == s or rel.startswith(s + "/") for s in SKIP):
                continue
            modules.append(Module(name, rel, is_package, file.read_text(encoding="utf-8")))
    return tuple(modules), frozenset(known)


@functools.cache
def project_imports() -> tuple[Import, ...]:
    modules, known = project_modules()
    return tuple(scan(modules, known))


# ---------------------------------------------------------------------------
# The rules (each returns the failure lines, empty when the rule holds)

def _wheres(imports: Iterable[Import]) -> str:
    return ", ".join(sorted({i.where for i in imports}, key=_where_key))


def _where_key(where: str) -> tuple[str, int]:
    path, _, line = where.rpartition(":")
    return path, int(line)


def _describe(imp: Import) -> str:
    flags = [f for f, on in (("function-level", imp.nested), ("TYPE_CHECKING", imp.type_checking)) if on]
    return f"{imp.where}: {imp.text}" + (f"  [{', '.join(flags)}]" if flags else "")


def _described(imports: Iterable[Import]) -> list[str]:
    """One line per import statement (``from x import a, b`` may be two Imports), in file:line order."""
    first: dict[str, Import] = {}
    for imp in imports:
        first.setdefault(f"{imp.where}: {imp.text}", imp)
    return [_describe(imp) for _, imp in sorted(first.items(), key=lambda kv: _where_key(kv[1].where))]


def bad_roots(imports: Iterable[Import]) -> list[str]:
    """Rule 1: absolute imports of project code that skip the l3fab. root."""
    return _described(i for i in imports if i.bad_root)


def _sccs(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        n = stack.pop()
                        on_stack.discard(n)
                        comp.append(n)
                        if n == node:
                            break
                    if len(comp) > 1:
                        result.append(sorted(comp))
    return sorted(result)


def _shortest_cycle(graph: Mapping[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest cycle through ``start`` staying inside ``within``: [start, ..., start]."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt not in within:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in seen:
                seen.add(nxt)
                parent[nxt] = node
                queue.append(nxt)
    return []


def cycles(edges: Mapping[tuple[str, str], list[Import]]) -> list[str]:
    """Every cycle in the graph ``edges`` ((from, to) -> the imports making that edge):
    one shortest cycle through each node of each strongly connected component, each
    step with the file:line of one import, then every import inside the component."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if a != b:
            graph[a].add(b)
    lines: list[str] = []
    for comp in _sccs(graph):
        members = set(comp)
        found: dict[tuple[str, ...], list[str]] = {}
        for node in comp:
            cyc = _shortest_cycle(graph, node, members)
            ring = cyc[:-1]
            k = ring.index(min(ring))
            ring = ring[k:] + ring[:k]  # one rotation per cycle
            found.setdefault(tuple(ring), [*ring, ring[0]])
        for cyc in sorted(found.values(), key=lambda c: (len(c), c)):
            steps = "; ".join(f"{a} -> {b} at {min((i.where for i in edges[a, b]), key=_where_key)}"
                              for a, b in itertools.pairwise(cyc))
            lines.append(f"cycle {' -> '.join(cyc)}  ({steps})")
        lines.append(f"  every import inside {{{', '.join(comp)}}}:")
        for a, b in sorted((a, b) for (a, b) in edges if a != b and a in members and b in members):
            lines += [f"    {a} -> {b}: {text}" for text in _described(edges[a, b])]
    return lines


def package_edges(imports: Iterable[Import]) -> dict[tuple[str, str], list[Import]]:
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in imports:
        a, b = package_of(imp.source), package_of(imp.target)
        if a and b and a != b:
            edges[a, b].append(imp)
    return edges


def package_cycles(imports: Iterable[Import]) -> list[str]:
    """Rule 2: no cycle between the packages."""
    return cycles(package_edges(imports))


def module_cycles(imports: Iterable[Import], within: str = LIBRARY) -> list[str]:
    """Rule 3: no cycle between the modules of ``within`` (the package itself included)."""
    def inside(name: str) -> bool:
        return name == within or name.startswith(within + ".")

    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in imports:
        if inside(imp.source) and inside(imp.target) and imp.source != imp.target:
            edges[imp.source, imp.target].append(imp)
    return cycles(edges)


def layering_offences(imports: Iterable[Import], allowed: Mapping[str, frozenset[str]] = ALLOWED) -> list[str]:
    """Rule 4: every package edge must be in ``allowed``."""
    lines = []
    for (a, b), imps in sorted(package_edges(imports).items()):
        if b not in allowed.get(a, frozenset()):
            lines.append(f"{a} -> {b} is not allowed:")
            lines += [f"    {text}" for text in _described(imps)]
    return lines


def nested_imports(imports: Iterable[Import]) -> list[str]:
    """Rule 5: project imports inside a def/class body."""
    return _described(i for i in imports if i.nested)


def _fail(rule: str, lines: list[str]) -> str:
    return f"{rule}:\n" + "\n".join(lines)


# ---------------------------------------------------------------------------
# The rules on the real tree

def test_scan_sees_the_tree():
    modules, known = project_modules()
    assert {package_of(m.name) for m in modules} == set(PACKAGES)
    assert len(modules) >= 80, f"only {len(modules)} modules found under {REPO}"
    assert not any(m.path.startswith(SKIP) for m in modules)
    assert f"{ROOT}.lab.peers.gobgp_api" in known  # skipped, but still a valid import target
    assert len(project_imports()) > 300


def test_imports_use_the_l3fab_root():
    offences = bad_roots(project_imports())
    assert not offences, _fail("absolute imports of project code without the l3fab. root "
                               "(they load a second copy of the module)", offences)


def test_no_package_cycle():
    offences = package_cycles(project_imports())
    assert not offences, _fail("import cycle between packages", offences)


def test_no_module_cycle_in_speaker():
    offences = module_cycles(project_imports(), LIBRARY)
    assert not offences, _fail(f"import cycle between modules of {LIBRARY}", offences)


def test_package_edges_are_allowed():
    offences = layering_offences(project_imports(), ALLOWED)
    assert not offences, _fail("imports against the layering (see ALLOWED at the top of this file)", offences)


def test_no_function_level_project_imports():
    offences = nested_imports(project_imports())
    assert not offences, _fail("project imports inside a function or class body (they hide cycles; "
                               "import at module level, or under `if TYPE_CHECKING:` for annotations)",
                               offences)


# ---------------------------------------------------------------------------
# The checker on synthetic modules: it must find what is planted

def _synthetic(files: Mapping[str, str]) -> list[Import]:
    modules = []
    for rel, source in files.items():
        name, is_package = module_name(rel)
        modules.append(Module(name, rel, is_package, source))
    return scan(modules)


def test_checker_allowed_table_is_a_dag():
    assert set(ALLOWED) == set(PACKAGES)
    edges = {(a, b): [] for a, bs in ALLOWED.items() for b in bs}
    assert not cycles(edges)
    assert all(b in PACKAGES for bs in ALLOWED.values() for b in bs)


def test_checker_finds_planted_offences():
    imports = _synthetic({
        "speaker/__init__.py": "",
        "speaker/wire/__init__.py": "from .a import X\n",
        "speaker/wire/a.py": "from . import b\nfrom ..helpers import tool\n",
        "speaker/wire/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from l3fab.tenancy.model import Tenant\n"
            "def f():\n"
            "    import json\n"
            "    from .a import X\n"
            "    return X\n"
        ),
        "speaker/helpers.py": "import grpc\n",
        "cli/__init__.py": "",
        "cli/main.py": "from l3fab.lab import deploy\nimport speaker.wire\n",
        "lab/__init__.py": "",
        "lab/deploy.py": "class C:\n    from l3fab.cli.main import app\n",
    })
    # 1: the root
    assert bad_roots(imports) == ["cli/main.py:2: import speaker.wire"]
    # 2: cli <-> lab, named with a file:line per step
    pc = package_cycles(imports)
    assert pc and pc[0] == "cycle cli -> lab -> cli  (cli -> lab at cli/main.py:1; lab -> cli at lab/deploy.py:2)"
    assert any("lab/deploy.py:2" in line and "function-level" in line for line in pc)
    # 3: a -> b (``from . import b`` is the module) -> a (function level)
    mc = module_cycles(imports, "l3fab.speaker")
    assert mc and mc[0].startswith("cycle l3fab.speaker.wire.a -> l3fab.speaker.wire.b -> l3fab.speaker.wire.a ")
    assert "speaker/wire/a.py:1" in mc[0] and "speaker/wire/b.py:6" in mc[0]
    # 4: speaker -> tenancy (even under TYPE_CHECKING) and lab -> cli; cli -> lab, cli -> speaker are fine
    lo = layering_offences(imports)
    assert lo == [
        "lab -> cli is not allowed:",
        "    lab/deploy.py:2: from l3fab.cli.main import app  [function-level]",
        "speaker -> tenancy is not allowed:",
        "    speaker/wire/b.py:3: from l3fab.tenancy.model import Tenant  [TYPE_CHECKING]",
    ]
    # 5: nested project imports only (not ``import json``, not the TYPE_CHECKING one)
    assert nested_imports(imports) == [
        "lab/deploy.py:2: from l3fab.cli.main import app  [function-level]",
        "speaker/wire/b.py:6: from .a import X  [function-level]",
    ]
    # relative imports resolve to modules: ..helpers from speaker/wire/a.py
    assert ("l3fab.speaker.wire.a", "l3fab.speaker.helpers") in {(i.source, i.target) for i in imports}
    # a relative import can climb to the root and into another package: still an edge
    climbing = _synthetic({"speaker/x/y.py": "from ...fib import z\n", "fib/__init__.py": "z = 1\n"})
    assert layering_offences(climbing) == ["speaker -> fib is not allowed:",
                                           "    speaker/x/y.py:1: from ...fib import z"]
    assert bad_roots(_synthetic({"speaker/y.py": "from .... import z\n"})) == ["speaker/y.py:1: from .... import z"]


def test_checker_passes_a_clean_tree():
    imports = _synthetic({
        "speaker/__init__.py": "from .wire import X\n",
        "speaker/wire.py": "X = 1\n",
        "tenancy/__init__.py": "from l3fab.speaker.wire import X\nfrom . import model\n",
        "tenancy/model.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from l3fab.speaker import wire\n"
            "def f():\n"
            "    import grpc\n"
        ),
        "cli/main.py": "from l3fab.tenancy.model import f\nfrom l3fab import lab\n",
        "lab/__init__.py": "",
    })
    assert len(imports) == 6
    for check in (bad_roots, package_cycles, module_cycles, layering_offences, nested_imports):
        assert check(imports) == [], check.__name__
