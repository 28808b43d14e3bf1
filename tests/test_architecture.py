"""The architecture holds: layers point one way, the runtime is decided in one place, files stay small.

docs/architecture.md draws the layers; this file is its enforcement. Every module of
``src/healthcare_mlops``, ``app/``, ``pages/`` and ``jobs/`` is parsed with ``ast`` (imports
inside functions count: a lazy import is still an arrow). Each rule is also run on a
snippet that breaks it, so the checks are shown to be able to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "healthcare_mlops"
MAX_LINES = 500

# The composition root, the adapters and the settings: where "local or Databricks?" may be
# asked and where clients are built. The bundle resolver gives the local pseudo-target its
# variables (it is not declared in databricks.yml), so it names the local target too.
ADAPTERS = ("healthcare_mlops.runtime", "healthcare_mlops.settings")
RUNTIME_DECIDERS = (*ADAPTERS, "healthcare_mlops.composition", "healthcare_mlops.bundle.interpolation")
# The core: every module of the package outside these (docs/architecture.md, "The core").
SHELL = (*ADAPTERS, "healthcare_mlops.composition", "healthcare_mlops.tasks", "healthcare_mlops.cli",
         "healthcare_mlops.emulator", "healthcare_mlops.bundle")
# What the core never imports: the adapters, the settings, and the libraries they wrap.
FORBIDDEN_IN_CORE = (*ADAPTERS, "mlflow", "databricks", "deltalake", "duckdb")
# The one stated exception: the model's packaging subclasses MLflow's PythonModel (and says
# which request errors MLflow returns), so it imports mlflow and nothing else of the edge.
PACKAGING = ("healthcare_mlops.modeling.pyfunc",)
PACKAGING_MAY_IMPORT = ("mlflow",)
# Layers, lowest first. A module may import its own layer and the ones below, never above.
# The local Databricks emulator (runner, Quartz, DAG, run guard, run history, offline validation,
# the local launcher) sits above the bundle model it reads, so the bundle model never imports it.
EMULATOR = ("healthcare_mlops.emulator",)
LAYERS = (
    ("core", ()),                                   # everything of the package not named below, the bundle model too
    ("adapters", ADAPTERS),
    ("emulator", EMULATOR),
    ("composition", ("healthcare_mlops.composition",)),
    ("tasks", ("healthcare_mlops.tasks",)),
    ("cli", ("healthcare_mlops.cli",)),
    ("console", ("app",)),
    ("pages", ("pages",)),
    ("entry points", ("jobs",)),
)
PAGE_LIBRARIES = ("streamlit", "pandas", "altair", "app", "__future__")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent if PACKAGE in path.parents else REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def sources() -> dict[str, Path]:
    files = [*PACKAGE.rglob("*.py"), *(REPO / "app").glob("*.py"), *(REPO / "pages").glob("*.py"),
             *(REPO / "jobs").glob("*.py")]
    return {module_name(p): p for p in files}


def imported_modules(tree: ast.AST, known: set[str], package: str = "") -> set[str]:
    """The known modules ``tree`` imports anywhere (``from a import b`` is ``a.b`` when that is a module)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def runtime_questions(tree: ast.AST) -> list[str]:
    """Each place the code asks whether it runs locally or on Databricks."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "is_local":
            found.append(f"line {node.lineno}: .is_local")
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "on_databricks":
                found.append(f"line {node.lineno}: on_databricks()")
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any((isinstance(o, ast.Name) and o.id == "LOCAL_TARGET")
                   or (isinstance(o, ast.Attribute) and o.attr == "LOCAL_TARGET")
                   or (isinstance(o, ast.Constant) and o.value in ("local", "databricks")) for o in operands):
                found.append(f"line {node.lineno}: compares with the local target")
    return found


def within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def is_core(module: str) -> bool:
    return module.startswith("healthcare_mlops") and not within(module, SHELL)


def imported_names(tree: ast.AST, package: str = "") -> set[str]:
    """Every dotted name ``tree`` imports (``from a import b`` gives ``a`` and ``a.b``), lazy imports too."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return found


def forbidden_imports(tree: ast.AST, module: str, package: str = "") -> list[str]:
    """What a core module imports of the edge (the packaging modules may import MLflow only)."""
    allowed = PACKAGING_MAY_IMPORT if module in PACKAGING else ()
    return sorted(name for name in imported_names(tree, package)
                  if within(name, FORBIDDEN_IN_CORE) and not within(name, allowed))


def mentions_settings(annotation: ast.AST | None) -> bool:
    """Whether an annotation names ``Settings`` (a name, ``module.Settings``, a string, ``Settings | None``)."""
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if (isinstance(node, ast.Name) and node.id == "Settings") or \
                (isinstance(node, ast.Attribute) and node.attr == "Settings"):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                mentions_settings(ast.parse(node.value, mode="eval").body):
            return True
    return False


def settings_parameters(tree: ast.AST) -> list[str]:
    """Each function parameter annotated ``Settings``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                     *(a for a in (arguments.vararg, arguments.kwarg) if a is not None)]
            found += [f"line {node.lineno}: {node.name}({a.arg})" for a in every if mentions_settings(a.annotation)]
    return found


def core_violations(tree: ast.AST, module: str, package: str = "") -> list[str]:
    """Why a core module breaks the core's rules (empty: it keeps them)."""
    return [f"imports {name}" for name in forbidden_imports(tree, module, package)] + \
        [f"takes Settings at {where}" for where in settings_parameters(tree)]


def deciding_functions(parsed: dict[str, ast.AST]) -> dict[str, set[str]]:
    """Per adapter module, its module-level functions that decide the runtime: they ask where they
    run, or call such a function by name (followed through the adapters until nothing changes)."""
    bodies = {(module, node.name): node for module, tree in parsed.items() if within(module, ADAPTERS)
              for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    deciding = {key for key, node in bodies.items() if runtime_questions(node)}
    while True:
        names = {name for _, name in deciding}
        more = {key for key, node in bodies.items() if key not in deciding
                and any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
                        for n in ast.walk(node))}
        if not more:
            break
        deciding |= more
    result: dict[str, set[str]] = {}
    for module, name in deciding:
        result.setdefault(module, set()).add(name)
    return result


def runtime_built(tree: ast.AST, deciding: dict[str, set[str]]) -> list[str]:
    """Each call to an adapter function that decides the runtime, and each client constructed (a
    ``...Client`` of MLflow or the Databricks SDK): what only the composition root may do."""
    origin = {}                                   # local name -> (module, attribute)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            origin |= {(a.asname or a.name): (node.module, a.name) for a in node.names}
        elif isinstance(node, ast.Import):
            origin |= {(a.asname or a.name): (a.name, None) for a in node.names}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in origin:
            module, name = origin[node.func.id]
        elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                and node.func.value.id in origin:
            package, module = origin[node.func.value.id]      # ``x.f()`` with x a module
            module, name = (package if module is None else f"{package}.{module}"), node.func.attr
        else:
            continue
        if name in deciding.get(module, ()) or \
                (within(module, ("mlflow", "databricks")) and str(name).endswith("Client")):
            found.append((node.lineno, f"line {node.lineno}: {module}.{name}()"))
    return [text for _, text in sorted(found)]


def layer_of(module: str) -> int:
    rank = 0
    for index, (_, prefixes) in enumerate(LAYERS):
        if within(module, prefixes):
            rank = index
    return rank


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


@pytest.fixture(scope="module")
def parsed() -> dict[str, ast.AST]:
    return {name: ast.parse(path.read_text(), str(path)) for name, path in sources().items()}


@pytest.fixture(scope="module")
def graph(parsed) -> dict[str, set[str]]:
    known = set(parsed)
    result = {}
    for name, tree in parsed.items():
        # a package's own __init__ is not an arrow back from its modules
        result[name] = {m for m in imported_modules(tree, known, package_of(name))
                        if m != name and not name.startswith(m + ".")}
    return result


def package_of(name: str) -> str:
    return name if sources()[name].name == "__init__.py" else name.rpartition(".")[0]


def test_only_the_composition_root_asks_where_it_runs(parsed):
    asked = {name: found for name, tree in parsed.items()
             if not within(name, RUNTIME_DECIDERS) and (found := runtime_questions(tree))}
    assert asked == {}


def test_the_core_imports_no_adapter_and_takes_no_settings(parsed):
    broken = {name: found for name, tree in parsed.items() if is_core(name)
              and (found := core_violations(tree, name, package_of(name)))}
    assert broken == {}


def test_tasks_and_the_core_receive_their_runtime(parsed):
    """Tasks get the catalog, Spark, the registry and the clients from the composition root's
    ``Runtime``; neither they nor the core build one (no call to an adapter function that decides
    the runtime, no MLflow or SDK client constructed)."""
    deciding = deciding_functions(parsed)
    assert {"table_catalog", "get_spark", "configure_mlflow"} <= set().union(*deciding.values())
    built = {name: found for name, tree in parsed.items()
             if (is_core(name) or within(name, ("healthcare_mlops.tasks",)))
             and (found := runtime_built(tree, deciding))}
    assert built == {}


def test_there_is_no_import_circle(graph):
    assert cycles(graph) == []


def room(module: str) -> str:
    """The package (or top-level module) of ``healthcare_mlops`` a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "healthcare_mlops" else parts[0]


def test_no_circle_between_packages(graph):
    """A module-level graph can be free of circles while two packages import each other (training
    once read governance's evidence column name while governance imports modeling): fold the
    graph to packages and look again."""
    folded: dict[str, set[str]] = {}
    for source, targets in graph.items():
        folded.setdefault(room(source), set()).update(room(t) for t in targets if room(t) != room(source))
    assert cycles(folded) == []
    assert cycles({"a.x": {"b.y"}, "b.y": {"a.x"}}) == [["a.x", "b.y"]]      # the check sees one


def test_layers_point_one_way(graph):
    """Nothing points up; a not-yet-converted core module's arrows into the adapters are its listed fault."""
    upward = sorted(f"{source} -> {target}" for source, targets in graph.items() for target in targets
                    if layer_of(target) > layer_of(source))
    assert upward == []


def test_pages_import_only_from_the_console_package(parsed):
    outside = {}
    for name, tree in parsed.items():
        if not name.startswith("pages."):
            continue
        roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        roots |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        if roots - set(PAGE_LIBRARIES):
            outside[name] = sorted(roots - set(PAGE_LIBRARIES))
    assert outside == {}


def test_no_source_file_is_over_the_size_limit():
    long = {str(p.relative_to(REPO)): n for p in sources().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


# The monitoring and scoring side of the core already kept to the layer rule (issue 25); the rest follows.
def test_the_runtime_check_sees_each_way_of_asking():
    snippet = ("if settings.is_local: pass\n"
               "if on_databricks(): pass\n"
               "if target == LOCAL_TARGET: pass\n"
               "if settings.target != 'local': pass\n")
    assert len(runtime_questions(ast.parse(snippet))) == 4
    assert runtime_questions(ast.parse("target = LOCAL_TARGET\nsettings = resolve(LOCAL_TARGET)\n")) == []


def test_the_cycle_and_layer_checks_see_a_violation():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("healthcare_mlops.bundle.interpolation") < layer_of("healthcare_mlops.emulator.run_history")
    assert layer_of("healthcare_mlops.monitoring.retrain") < layer_of("healthcare_mlops.emulator.runner") \
        < layer_of("healthcare_mlops.tasks.model_monitoring") < layer_of("healthcare_mlops.cli.main")
    known = {"healthcare_mlops.emulator.runner", "healthcare_mlops.bundle", "healthcare_mlops"}
    tree = ast.parse("def f():\n    from healthcare_mlops.emulator.runner import run_job\n")
    assert imported_modules(tree, known) == {"healthcare_mlops.emulator.runner"}


def test_the_core_rules_see_each_violation():
    snippet = ("import mlflow\n"
               "def f():\n    from healthcare_mlops.runtime.catalog import table_catalog\n"
               "from healthcare_mlops import settings\n"
               "from deltalake import DeltaTable\n")
    assert forbidden_imports(ast.parse(snippet), "healthcare_mlops.governance.x") == [
        "deltalake", "deltalake.DeltaTable", "healthcare_mlops.runtime.catalog",
        "healthcare_mlops.runtime.catalog.table_catalog", "healthcare_mlops.settings", "mlflow"]
    assert forbidden_imports(ast.parse("import mlflow.pyfunc\n"), PACKAGING[0]) == []
    assert forbidden_imports(ast.parse("import duckdb\n"), PACKAGING[0]) == ["duckdb"]
    assert forbidden_imports(ast.parse("import pandas\nfrom healthcare_mlops.settings_help import x\n"),
                             "healthcare_mlops.governance.x") == []
    typed = ("def a(settings: Settings): pass\n"
             "def b(x, *, s: 'Settings | None' = None): pass\n"
             "async def c(*args: settings.Settings): pass\n"
             "def d(settings, variables: dict) -> Settings: pass\n")
    assert settings_parameters(ast.parse(typed)) == ["line 1: a(settings)", "line 2: b(s)", "line 3: c(args)"]
    assert is_core("healthcare_mlops.governance.audit") and is_core("healthcare_mlops.identity")
    assert not is_core("healthcare_mlops.runtime.catalog") and not is_core("healthcare_mlops.tasks.model_training")
    assert not is_core("healthcare_mlops.settings") and not is_core("app.data")


def test_the_composition_check_sees_a_runtime_built_below_the_root():
    adapters = {"healthcare_mlops.runtime.x": ast.parse(
        "def asks(s):\n    return 1 if s.is_local else 2\n"
        "def builds(s):\n    return asks(s)\n"
        "def helper(s):\n    return s\n")}
    deciding = deciding_functions(adapters)
    assert deciding == {"healthcare_mlops.runtime.x": {"asks", "builds"}}
    task = ("from healthcare_mlops.runtime.x import builds, helper\n"
            "from healthcare_mlops.runtime import x\n"
            "from databricks.sdk import WorkspaceClient\n"
            "import mlflow.tracking as tracking\n"
            "def run(s):\n    helper(s)\n    builds(s)\n    x.asks(s)\n    WorkspaceClient()\n"
            "    tracking.MlflowClient()\n")
    assert runtime_built(ast.parse(task), deciding) == [
        "line 7: healthcare_mlops.runtime.x.builds()", "line 8: healthcare_mlops.runtime.x.asks()",
        "line 9: databricks.sdk.WorkspaceClient()", "line 10: mlflow.tracking.MlflowClient()"]
    assert layer_of("healthcare_mlops.governance.audit") < layer_of("healthcare_mlops.runtime.catalog") \
        < layer_of("healthcare_mlops.composition")
