"""docs/architecture.md stays true: what it names exists, and the imports follow its layers."""

import ast
import re

from tests.conftest import ROOT

DOC = (ROOT / "docs" / "architecture.md").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()
# training.enabled=false hands the run to the evaluate command
ALLOWED = {("src.train", "src.evaluate")}


def _imports() -> dict[str, set[str]]:
    """Every module of src/ and hydra_plugins/ and the project modules it imports (also inside functions)."""
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "hydra_plugins").rglob("*.py"))]
    names = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:  # `from src.tracking import access`: the module, if it is one
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in names else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def _layers() -> dict[str, int]:
    """The layer of each library package, as the page gives it: `src/models/ ... (layer 2)`."""
    layers = {}
    for path, layer in re.findall(r"^ (src/\S+)\s.*\(layer (\d+)\)$", DOC, flags=re.M):
        layers[path.removesuffix("/").removesuffix(".py").replace("/", ".")] = int(layer)
    layers["src"] = layers.pop("src.__init__")
    return layers


def _layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of a library module (None: a command, or outside src/)."""
    if module == "src":
        return layers["src"]
    while module.count(".") >= 1:
        if module in layers:
            return layers[module]
        module = module.rpartition(".")[0]
    return None


def test_what_the_page_names_exists():
    named = set(re.findall(r"`?((?:src|conf|hydra_plugins|tests|docs|bench)/[\w./-]*\w/?)`?", DOC))
    assert len(named) > 30
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names what is not there: {missing}"
    for package in ("data", "models", "training", "tracking", "reading", "apps", "sweeps"):
        assert (ROOT / "src" / package / "__init__.py").is_file()
        assert f"src/{package}/" in DOC


def test_every_package_of_src_is_on_the_page():
    packages = {p.parent.name for p in (ROOT / "src").glob("*/__init__.py")}
    layers = _layers()
    assert {f"src.{p}" for p in packages} <= set(layers), "a package of src/ has no layer on the page"


def test_imports_follow_the_layers_and_have_no_cycles():
    graph, layers = _imports(), _layers()
    commands = {
        m for m in graph if m.count(".") == 1 and m.startswith("src.") and _layer_of(m, layers) is None
    }
    assert {"src.train", "src.evaluate", "src.predict", "src.draw", "src.compare"} <= commands
    wrong = []
    for module, imported in graph.items():
        layer = _layer_of(module, layers)
        for other in imported:
            if layer is not None:  # the library: its own package and the layers below
                other_layer = _layer_of(other, layers)
                if other_layer is None or other_layer > layer:
                    wrong.append(f"{module} -> {other}")
            elif module in commands and other in commands and (module, other) not in ALLOWED:
                wrong.append(f"{module} -> {other} (a command imports another)")
    assert not wrong, "imports against the layers of docs/architecture.md: " + ", ".join(sorted(wrong))

    seen, cycles = set(), []

    def visit(module, path):
        if module in path:
            cycles.append(path[path.index(module) :] + [module])
            return
        if module in seen:
            return
        for other in sorted(graph[module]):
            visit(other, [*path, module])
        seen.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, f"import cycles: {cycles}"


# Outside src/tracking/, only these modules of the library import MLflow: the reading model's flavour (it
# builds on MLflow's pyfunc, as MLflow's own flavours build on its tracking). The bench (bench/) is not
# the library: it reads the runs it times as a user's script would. The list can only shrink: a module
# that stops importing MLflow leaves it.
MLFLOW_OUTSIDE_TRACKING = {"src.reading.reader_model", "src.reading.reader_entry"}


def test_nothing_outside_tracking_imports_mlflow_but_the_listed():
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "hydra_plugins").rglob("*.py"))]
    found = set()
    for path in files:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.startswith("src.tracking."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(name == "mlflow" or name.startswith("mlflow.") for name in names):
                found.add(module)
    assert found == MLFLOW_OUTSIDE_TRACKING, (
        f"MLflow imported outside src/tracking/ by {sorted(found - MLFLOW_OUTSIDE_TRACKING)}; "
        f"no longer by {sorted(MLFLOW_OUTSIDE_TRACKING - found)} (take it off the list)"
    )


def _project_imports(path) -> set[str]:
    """The top-level project packages a file imports (also inside functions): src, bench, tests, ..."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & {"src", "bench", "tests", "hydra_plugins"}


def test_the_bench_measures_the_library_from_outside():
    """bench/ sits beside src/, not in it: the library never imports the bench, the bench imports the
    library (anything of it) and itself, and it is not installed with the library."""
    assert not (ROOT / "src" / "bench.py").exists() and (ROOT / "bench" / "__main__.py").is_file()
    library = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "hydra_plugins").rglob("*.py"))]
    into_bench = [str(p.relative_to(ROOT)) for p in library if "bench" in _project_imports(p)]
    assert not into_bench, f"the library imports the bench: {into_bench}"
    bench = sorted((ROOT / "bench").glob("*.py"))
    assert len(bench) > 5
    for path in bench:
        assert _project_imports(path) <= {"src", "bench"}, f"{path.relative_to(ROOT)} imports beyond src/"
    assert any("src" in _project_imports(path) for path in bench)
    packaged = re.search(r"\[tool.setuptools.packages.find\][^\[]*include = (\[[^\]]*\])", PYPROJECT, re.S)
    assert packaged and "bench" not in packaged.group(1), "the bench is installed with the library"


# what tracking records comes as results (src/results.py); it knows runs, models and the store, not digits
DOMAIN = ("src.data", "src.models", "src.training", "src.reading", "src.apps", "src.sweeps", "src.cli")


def test_tracking_imports_no_domain_package():
    graph, layers = _imports(), _layers()
    commands = {m for m in graph if m.count(".") == 1 and _layer_of(m, layers) is None}
    assert "src.train" in commands and "src.results" not in commands
    wrong = sorted(
        f"{module} -> {other}"
        for module, imported in graph.items()
        if module == "src.tracking" or module.startswith("src.tracking.")
        for other in imported
        if other.startswith(tuple(f"{d}." for d in DOMAIN)) or other in DOMAIN or other in commands
    )
    assert not wrong, "tracking imports the domain: " + ", ".join(wrong)
    assert layers["src.tracking"] < min(layers[d] for d in DOMAIN if d in layers)


def test_no_module_over_400_lines_and_no_function_over_60():
    """Rooms a newcomer can read: the library, the Optuna sweeper and the bench (the tests aside)."""
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]
    long_modules, long_functions = [], []
    for path in sorted([*files, *(ROOT / "bench").glob("*.py")]):
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if len(text.splitlines()) > 400:
            long_modules.append(f"{name} ({len(text.splitlines())})")
        for node in ast.walk(ast.parse(text)):
            functions = ast.FunctionDef | ast.AsyncFunctionDef
            if isinstance(node, functions) and node.end_lineno and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{name}: {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long_modules and not long_functions, (long_modules, long_functions)
