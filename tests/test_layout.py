"""The package layout: layers import only downwards, no import cycles, no lazy-import tricks."""

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Each package may import only from packages earlier in this list (and itself).
LAYERS = ["agents", "environment", "learning", "experiments"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Project modules imported anywhere in ``path`` (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in LAYERS}


MODULES = {module_name(p): p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")}


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for name, path in MODULES.items():
        g.add_node(name)
        for target in imports(path):
            if target in MODULES and target != name:
                g.add_edge(name, target)
    return g


def test_no_package_imports_a_layer_above_it():
    upward = []
    for name, path in MODULES.items():
        layer = LAYERS.index(name.split(".")[0])
        for target in imports(path):
            if LAYERS.index(target.split(".")[0]) > layer:
                upward.append(f"{name} -> {target}")
    assert not upward, upward


def test_no_import_cycles_between_modules():
    g = graph()
    # a package's __init__ re-exporting its submodules is not a cycle of ideas
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles


@pytest.mark.parametrize("package", LAYERS)
def test_packages_load_without_lazy_tricks(package):
    source = (ROOT / package / "__init__.py").read_text()
    assert "__getattr__" not in source and "import_module" not in source


def test_the_layout_test_sees_an_upward_import(tmp_path):
    """The walker finds an import inside a function body (the kind that hid the old cycles)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from experiments.cli import main\n    return main\n")
    assert imports(module) == {"experiments.cli", "experiments.cli.main"}
