"""The one-way rule, read from the imports: pages -> viz -> recording -> model -> memories -> base, with ops
at the bottom beside base. The package's top-level modules sit on two floors: ``base`` (value types and
small pieces every part shares) below the memories, ``model`` (the model and its files) above them.
Command-line modules (``*/cli.py``) are the only importers of ``nested_learning.cli``; no library module
imports Streamlit or the pages; the pages reach the package through ``nested_learning.viz``."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nested_learning"
PAGES = ROOT / "app_pages"

# The top-level modules of nested_learning, by floor. A new module needs a floor here.
FLOORS = {
    # Value types and small pieces the memories and everything above share: what to switch off, the config,
    # the explicit state, bytes as tokens, the device, safe file reading, stateless layers, the synthetic
    # tasks' wordings (the tasks themselves are training's), the metrics file's format.
    "base": {"ablation", "config", "state", "trace", "tokenizer", "device", "safe_files", "layers", "phrasings",
             "metrics_file"},
    # The model over the memories: attention beside them, the transformer, its parameter shapes and files.
    "model": {"attention", "model", "shapes", "checkpoint"},
}
# What each part may import from nested_learning (its own part always).
ALLOWED = {
    "ops": set(),
    "base": set(),
    "memories": {"base", "ops"},
    "model": {"base", "memories", "ops"},
    "recording": {"base", "memories", "model", "ops"},
    "training": {"base", "memories", "model", "ops"},
    "validation": {"base", "memories", "model", "ops", "training", "recording"},
    "viz": {"base", "memories", "model", "ops", "recording", "training", "validation"},
}
SUBPACKAGES = {"ops", "memories", "recording", "training", "validation", "viz"}


def _root_exports() -> dict[str, str]:
    """Names the package root re-exports (``from nested_learning import Ablation``) -> the module defining them."""
    exports = {}
    for node in ast.parse((PACKAGE / "__init__.py").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            exports.update({alias.asname or alias.name: node.module.split(".")[0] for alias in node.names})
    return exports


ROOT_EXPORTS = _root_exports()


def part_of(module: str) -> str:
    """The part of nested_learning a module (or a name in one) belongs to: a subpackage, a floor, or cli
    for the top-level command line. The root itself re-exports the model: it is on the model floor."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "__version__"):
        return "model"
    name = ROOT_EXPORTS.get(parts[1], parts[1])
    if name in SUBPACKAGES:
        return name
    if name in ("cli", "__main__"):
        return "cli"
    for floor, members in FLOORS.items():
        if name in members:
            return floor
    raise AssertionError(f"{module}: nested_learning.{name} is on no floor (add it to FLOORS in {__file__})")


def imports(path: Path, package_root: Path = PACKAGE.parent) -> list[str]:
    module = ".".join(path.relative_to(package_root).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found += [target] + [f"{target}.{alias.name}" for alias in node.names]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_is_on_one_floor():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__", "cli"}
    placed = [name for members in FLOORS.values() for name in members]
    assert len(placed) == len(set(placed)), "a module on two floors"
    assert top == set(placed), f"not on a floor: {sorted(top - set(placed))}; no such module: {sorted(set(placed) - top)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    mine = part_of(module)
    for target in imports(path):
        assert not target.startswith(("streamlit", "app_pages")), f"{module} imports {target}"
        if not target.startswith("nested_learning.") or target.count(".") < 1:
            continue
        theirs = part_of(target)
        if theirs == "cli":
            assert path.name in ("cli.py", "__main__.py"), f"{module} imports the command line ({target})"
            continue
        if mine == "cli":  # the router may reach any command
            continue
        if path == PACKAGE / "__init__.py":  # the root re-exports the model and what it is made of
            assert theirs in ALLOWED["model"] | {"model"}, f"the package root imports {target} ({theirs})"
            continue
        assert theirs == mine or theirs in ALLOWED[mine], f"{module} ({mine}) imports {target} ({theirs})"


# What the memories may read of the base floor: value types (the trace's among them) and small layers,
# never tasks or files.
MEMORY_MAY_READ = {"ablation", "config", "layers", "state", "trace"}


@pytest.mark.parametrize("path", sorted((PACKAGE / "memories").glob("*.py")), ids=lambda p: p.name)
def test_the_memories_read_only_value_types_and_layers(path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for target in imports(path):
        if target.startswith("nested_learning.") and part_of(target) not in ("memories", "ops"):
            assert target.split(".")[1] in MEMORY_MAY_READ, f"{module} imports {target}"


# ---- the dashboard ------------------------------------------------------------------------------
# Page scripts: Streamlit runs them (app.py lists them); importing one would run it.
PAGE_SCRIPTS = {"explore", "compare", "learn", "validate", "model"}
# What the pages may import of nested_learning besides viz: the base floor's value types (Ablation, the
# config's presets, ByteTokenizer) and the validation suite the Validate page runs.
PAGES_MAY_IMPORT = {"viz", "base", "validation"}
# Two names of the model floor, each for one reason: the loaders' return type in annotations, and the error
# a damaged shipped checkpoint raises (caught to fall back and say why). Nothing in the pages calls the model.
PAGES_MAY_NAME = {"nested_learning.HopeTransformer", "nested_learning.CheckpointError"}
DASHBOARD = sorted(PAGES.glob("*.py")) + [ROOT / "app.py"]


def test_the_page_scripts_are_the_ones_app_py_lists():
    listed = {node.args[0].value.removeprefix("app_pages/").removesuffix(".py")
              for node in ast.walk(ast.parse((ROOT / "app.py").read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page"
              and node.args and isinstance(node.args[0], ast.Constant)}
    assert listed == PAGE_SCRIPTS


@pytest.mark.parametrize("path", DASHBOARD, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_reach_the_package_through_viz(path):
    for target in imports(path, ROOT):
        if target.startswith("app_pages."):
            helper = target.split(".")[1]
            assert helper not in PAGE_SCRIPTS, f"{path.name} imports the page {target} (importing a page runs it)"
            assert (PAGES / f"{helper}.py").is_file(), f"{path.name} imports {target}: no such helper"
        if not target.startswith("nested_learning.") or target in PAGES_MAY_NAME:
            continue
        assert part_of(target) in PAGES_MAY_IMPORT, f"{path.name} imports {target} ({part_of(target)})"
