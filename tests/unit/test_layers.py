"""The layers of docs/architecture.md, read from the import graph: a wrong import fails here.

app/ -> flows/ -> tasks/ -> connectors/ ; connectors/es/ is the only door to Elasticsearch;
no import cycle anywhere (imports inside functions and type-only imports included)
"""

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2] / "src" / "elastic_ingest"


def _layer(module: str) -> str:
    """`elastic_ingest.flows.sync` -> `flows.sync`: installed, the layers live under that name."""
    return module.removeprefix("elastic_ingest.")


def imports_of(path: Path, root: Path = PROJECT) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included),
    named by its layer; relative imports are resolved against the file's package."""
    found = set()
    package = list(path.relative_to(root).parent.parts) if path.is_relative_to(root) else []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_layer(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(_layer(node.module))
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1]
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return found


def module_files(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (PROJECT / package).rglob("*.py"))


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """`file: module` for each import of a forbidden package (or one of its submodules)."""
    return [
        f"{path.relative_to(PROJECT) if path.is_relative_to(PROJECT) else path}: {module}"
        for path in files
        for module in sorted(imports_of(path))
        if any(module == name or module.startswith(f"{name}.") for name in forbidden)
    ]


RULES = [
    ("connectors/ never imports Prefect or the layers above it", "connectors", None,
     ("prefect", "flows", "tasks", "app", "deployments", "workers")),
    ("only connectors/es/ speaks HTTP to Elasticsearch (our client is over httpx)",
     ("connectors", "tasks", "flows", "app", "deployments", "workers"), "connectors/es",
     ("httpx", "elasticsearch", "elastic_transport")),
    ("sources never import Elasticsearch code", "connectors/sources", None,
     ("elasticsearch", "elastic_transport", "connectors.es")),
    ("connectors/es/ never imports a source or the protocol", "connectors/es", None,
     ("connectors.sources", "connectors.protocol", "connectors.job", "connectors.engine")),
    ("tasks/ never imports flows/ or the CLI", "tasks", None, ("flows", "app")),
    ("flows/ never imports the CLI", "flows", None, ("app",)),
    ("workers/ start flow runs, never import them (the fork server preloads by name)",
     "workers", None, ("flows", "tasks", "app")),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "package", "except_under", "forbidden"), RULES)
def test_layer_rule(rule, package, except_under, forbidden):
    packages = (package,) if isinstance(package, str) else package
    files = [
        path
        for path in module_files(*packages)
        if except_under is None or not path.is_relative_to(PROJECT / except_under)
    ]
    assert files, f"no modules found under {package}"
    assert offenders(files, forbidden) == [], rule


def test_the_check_sees_a_wrong_import(tmp_path):
    """The rule can fail: a lazy Prefect import inside a function is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def later():\n    from prefect import flow\n    return flow\n")
    assert offenders([bad], ("prefect",)) == [f"{bad}: prefect"]
    assert offenders([bad], ("pref",)) == []  # a package name, not a prefix of one


def test_the_check_sees_a_wrong_import_under_the_package_name(tmp_path):
    """`from elastic_ingest.flows import sync` is an import of the flows layer."""
    bad = tmp_path / "bad.py"
    bad.write_text("from elastic_ingest.flows import sync\nimport elastic_ingest.app.cli\n")
    assert offenders([bad], ("flows", "app")) == [f"{bad}: app.cli", f"{bad}: flows"]


def test_relative_imports_are_resolved(tmp_path):
    module = tmp_path / "connectors" / "sources" / "mine.py"
    module.parent.mkdir(parents=True)
    module.write_text("from ..es import client\nfrom . import text\nfrom .. import sync\n")
    assert imports_of(module, root=tmp_path) == {
        "connectors.es",
        "connectors.sources",
        "connectors",
    }


def module_graph(root: Path = PROJECT) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (any depth, type-only ones too); `from a import
    b` names the module `a.b` when there is one, else the package `a`."""
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(_layer(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = _layer(node.module or "")
                found.update(
                    f"{module}.{alias.name}" if f"{module}.{alias.name}" in names else module
                    for alias in node.names
                )
        graph[name] = {module for module in found if module in names and module != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle():
    graph = module_graph()
    assert "connectors.job.run" in graph and graph["flows.sync"]  # the graph really is read
    assert import_cycles(graph) == []


def test_the_cycle_check_sees_a_cycle_through_a_lazy_import(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text("")
    (tmp_path / "flows" / "sync.py").write_text("def later():\n    from . import parts\n")
    (tmp_path / "flows" / "parts.py").write_text("from elastic_ingest.flows.sync import x\n")
    (tmp_path / "flows" / "poll.py").write_text("from elastic_ingest.flows import parts\n")
    assert import_cycles(module_graph(tmp_path)) == [["flows.parts", "flows.sync"]]
