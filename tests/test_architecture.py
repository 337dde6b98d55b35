"""The package's shape (issue 10): folders are layers, dependencies point one way, no import circle (lazy imports
inside functions included), no module over 400 lines, every public class documented, every folder shipped.

Read from the source with `ast`; nothing is imported, so this runs in a blink and needs no model.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "valueguard"

# Lower layers never import higher ones; a layer may import its own folders and any lower layer.
LAYERS = {
    "errors": 0, "config": 0, "logs": 0,
    "values": 1,
    "reference": 2, "embedders": 2, "index": 2,
    "estimation": 3, "policy": 3,
    "guard": 4, "quality": 4,
    "integrations": 5, "audit": 5, "server": 5,
    "cli": 6,
}
# The one-line shims on ValueGuard (guard.wrap, .agent_middleware, .as_runnable, .guarded) import their integration
# when called; they are the only imports upward, and only inside a function body.
SHIMS = {
    ("valueguard.guard.guard", "valueguard.integrations.langchain.chat_model"),
    ("valueguard.guard.guard", "valueguard.integrations.langchain.agent"),
    ("valueguard.guard.guard", "valueguard.integrations.langchain.lcel"),
    ("valueguard.guard.guard", "valueguard.integrations.decorator"),
}
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The valueguard module an import of `name` loads (the nearest enclosing module that exists)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported valueguard module, whether the import is inside a function) for every import in `module`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    is_package = MODULES[module].name == "__init__.py"
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((r, inner) for a in child.names if (r := _resolve(a.name)))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for a in child.names:
                    if (r := _resolve(f"{base}.{a.name}")) and r.startswith("valueguard"):
                        found.append((r, inner))
            visit(child, inner)

    visit(tree, False)
    return [(m, lazy) for m, lazy in found if m.startswith("valueguard") and m != module]


GRAPH = {m: _imports(m) for m in MODULES}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_the_layers_are_the_folders():
    # Every folder and root module has a layer, so a new one has to be placed on purpose.
    top = {m.split(".")[1] for m in MODULES if "." in m}
    assert top <= set(LAYERS), f"not placed in a layer: {sorted(top - set(LAYERS))}"


def test_dependencies_point_down():
    upward = []
    for module, imports in GRAPH.items():
        if module == "valueguard":
            continue  # the lazy facade of public names
        for target, lazy in imports:
            if target == "valueguard":
                assert module.startswith("valueguard.cli"), f"{module} imports the package facade"
                continue
            if (module, target) in SHIMS:
                assert lazy, f"{module} imports {target} at module level"
                continue
            if _layer(target) > _layer(module):  # type: ignore[operator]
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_circle_lazy_or_not():
    edges = {m: sorted({t for t, _ in imps if (m, t) not in SHIMS and t != "valueguard"}) for m, imps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for m in edges:
        if m not in state:
            walk(m)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_shims_are_the_only_way_up_from_the_core():
    # No core module (below integrations) imports an integration, except ValueGuard's shims.
    core = [m for m in GRAPH if m != "valueguard" and (_layer(m) or 0) < LAYERS["integrations"]]
    users = sorted({(m, t) for m in core for t, _ in GRAPH[m] if t.startswith("valueguard.integrations")})
    assert set(users) <= SHIMS


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_400_lines(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(REPO)} has {lines} lines"


def test_every_public_class_has_a_docstring():
    missing = []
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and not ast.get_docstring(node):
                missing.append(f"{module}.{node.name}")
    assert not missing, "public classes without a docstring: " + ", ".join(missing)


def test_every_folder_of_the_package_is_in_the_wheel():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert folders <= listed, f"packages missing from pyproject.toml: {sorted(folders - listed)}"
    assert listed - folders == {"valueguard.bundled_policies"}


def test_the_audit_command_offers_every_log_format():
    # The CLI lists the formats as a literal (its --help imports no reader); it must name exactly the readers.
    from valueguard.audit.readers import READERS
    from valueguard.cli.audit import FORMATS

    assert FORMATS == ["auto", *READERS]


def test_every_error_of_ours_derives_from_valueguard_error():
    # Imported, not parsed: the bases are what Python says they are (an error may derive from another of ours).
    import importlib
    import inspect

    from valueguard.errors import ValueGuardError

    # local_llm.py imports nothing of valueguard: the Makefile runs it with any python to get the build flags.
    exempt = {"valueguard.integrations.local_llm.LocalLLMCrashed"}
    loose = []
    for module in MODULES:
        if module.endswith("__main__"):
            continue
        for name, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if (cls.__module__ == module and issubclass(cls, BaseException) and not name.startswith("_")
                    and not issubclass(cls, ValueGuardError) and f"{module}.{name}" not in exempt):
                loose.append(f"{module}.{name}")
    assert not loose, "errors that do not derive from ValueGuardError: " + ", ".join(loose)
