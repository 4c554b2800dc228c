"""The shape the code keeps: short functions, thin CLIs, imports that run one way (ast only, no imports)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("deblurring", "training", "transferring", "models", "data", "losses", "utils")
CLIS = ("train.py", "deblur.py", "transfer.py")
MAX_FUNCTION_LINES = 80
MAX_CLI_LINES = 150


def _sources() -> dict[str, Path]:
    """Module name → file, for every module of the packages and the three CLIs."""
    files = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    files += [REPO / cli for cli in CLIS]
    modules = {}
    for path in files:
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(module: str, tree: ast.AST, known: set[str]) -> set[str]:
    """The known modules that ``module`` imports anywhere (inside functions too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} & known
            found |= {f"{node.module}.{a.name}" for a in node.names} & known
    return found - {module}


def test_no_function_is_longer_than_80_lines():
    long = []
    for module, path in _sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, long


def test_the_commands_are_thin():
    for cli in ("deblur.py", "transfer.py"):
        lines = len((REPO / cli).read_text().splitlines())
        assert lines <= MAX_CLI_LINES, f"{cli}: {lines} lines"


def test_no_import_circle():
    """No module reaches itself through imports (module-level or inside functions)."""
    sources = _sources()
    known = set(sources)
    graph = {m: _imports(m, ast.parse(p.read_text()), known) for m, p in sources.items()}
    circles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" → ".join(path + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert not circles, circles[:3]
