"""`pip install .` builds a wheel of the library with its dependencies and the `nested-learning` command;
installed alone (no checkout around it), the library imports and the commands run."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_the_library_its_dependencies_and_the_command(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "nested_learning", source / "nested_learning",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "--quiet", "--disable-pip-version-check", "-w", str(tmp_path / "dist")], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("nested_learning_explorer-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for module in ("nested_learning/model.py", "nested_learning/ops/__init__.py", "nested_learning/training/recipe.py",
                   "nested_learning/validation/suite.py", "nested_learning/viz/cli.py"):
        assert module in names
    assert not any(n.startswith(("tests/", "app_pages/", "bench/", "assets/")) for n in names)
    assert "Requires-Dist: torch==2.13.0" in metadata and "Requires-Dist: streamlit" in metadata
    assert "nested-learning = nested_learning.cli:main" in entry_points

    # Installed on its own, away from the checkout: the library imports and the command line runs.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", str(wheel), "--no-deps", "--quiet",
                    "--disable-pip-version-check", "--target", str(target)], check=True, timeout=300)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", "import nested_learning, sys; print(nested_learning.__file__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith(str(target))
    dashboard = subprocess.run([sys.executable, "-m", "nested_learning", "dashboard"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
    assert dashboard.returncode == 2 and "runs from a checkout of the repository" in dashboard.stderr
    assert "Traceback" not in dashboard.stderr


def test_the_dashboard_command_starts_the_app_from_a_checkout(capsys):
    from nested_learning.cli import main
    assert main(["dashboard", "--dry-run", "--port", "8600"]) == 0
    command = capsys.readouterr().out
    assert f"streamlit run {ROOT / 'app.py'} --server.port 8600" in command
    assert main(["dashboard", "--port", "0"]) == 2
    assert "--port must be in [1, 65535]" in capsys.readouterr().err
