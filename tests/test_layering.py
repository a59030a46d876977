"""The one-way rule, read from the imports: pages -> viz -> recording -> model -> memories -> ops.
Command-line modules (``*/cli.py``) are the only importers of ``nested_learning.cli``; no library
module imports Streamlit or the pages."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nested_learning"
# What each part of the package may import from nested_learning (its own part always).
ALLOWED = {
    "ops": set(),
    # The memories use the package's value types (config, ablation, state, small layers); the model composes
    # them. That is one level in both directions, so the model's own modules are named apart below.
    "memories": {"core", "ops"},
    "core": {"ops", "memories"},
    "recording": {"core", "memories", "ops"},
    "training": {"core", "memories", "ops"},
    "validation": {"core", "memories", "ops", "training", "recording"},
    "viz": {"core", "memories", "ops", "recording", "training", "validation"},
}


def part_of(module: str) -> str:
    """ops / memories / recording / training / validation / viz for a subpackage (or a name in it), cli for the
    top-level command line, core for any other top-level module (or a name in one)."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in ALLOWED:
        return parts[1]
    return "cli" if len(parts) >= 2 and parts[1] in ("cli", "__main__") else "core"


def imports(path: Path) -> list[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
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
        assert theirs == mine or theirs in ALLOWED[mine], f"{module} ({mine}) imports {target} ({theirs})"


# What the memories may read of the core: value types and small layers, never the model or its files.
MEMORY_MAY_READ = {"ablation", "config", "layers", "state", "trace"}


@pytest.mark.parametrize("path", sorted((PACKAGE / "memories").glob("*.py")), ids=lambda p: p.name)
def test_the_memories_read_only_value_types_of_the_core(path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for target in imports(path):
        if part_of(target) == "core" and target.startswith("nested_learning."):
            assert target.split(".")[1] in MEMORY_MAY_READ, f"{module} imports {target}"
