"""An offline English corpus from text that ships with Python and Debian (used for the shipped model).

    python -m nested_learning.training.corpus OUT_FOLDER

writes three kinds of .txt files:
    python-reference/<topic>.txt   the Python Language Reference topics in ``pydoc_data.topics``
    python-docstrings/<module>.txt docstrings of 200+ characters of the standard library's modules
    licenses/<name>.txt            the licence texts in /usr/share/common-licenses (when present)
Licences: the Python documentation and standard library are under the PSF License v2, which allows
derivative works; the licence texts allow verbatim copying and are used here only as training text.
"""
from __future__ import annotations

import ast
import sys
import sysconfig
from pathlib import Path

MIN_DOCSTRING = 200
LICENSES = Path("/usr/share/common-licenses")


def module_docstrings(path: Path) -> list[str]:
    """Docstrings of at least MIN_DOCSTRING characters of a module, its classes and functions."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
    return [d for d in docs if d and len(d) >= MIN_DOCSTRING]


def build_corpus(out: Path, stdlib: Path | None = None, licenses: Path = LICENSES) -> dict[str, int]:
    """Write the corpus; returns bytes written per part."""
    import pydoc_data.topics

    out = Path(out)
    sizes = {"python-reference": 0, "python-docstrings": 0, "licenses": 0}

    def put(part: str, name: str, text: str):
        target = out / part / f"{name}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        sizes[part] += len(text.encode("utf-8"))

    for topic, text in sorted(pydoc_data.topics.topics.items()):
        put("python-reference", topic, text)
    stdlib = Path(stdlib or sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if path.parent.name in ("test", "tests", "idlelib", "site-packages"):
            continue
        docs = module_docstrings(path)
        if docs:
            put("python-docstrings", str(path.relative_to(stdlib).with_suffix("")).replace("/", "."), "\n\n".join(docs))
    if licenses.is_dir():
        for path in sorted(licenses.iterdir()):
            if path.is_file() and not path.is_symlink():  # GPL -> GPL-3 etc. would be duplicates
                put("licenses", path.name, path.read_text(encoding="utf-8", errors="replace"))
    return sizes


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m nested_learning.training.corpus OUT_FOLDER")
    for part, size in build_corpus(Path(sys.argv[1])).items():
        print(f"{part}: {size:,} bytes")
