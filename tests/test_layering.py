"""Layering: nothing under pipeline/ imports gradio, and studio/ only uses the facade."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What studio/ may import from the pipeline: the facade and the plain data it hands out.
STUDIO_MAY_IMPORT = {"pipeline", "pipeline.errors", "pipeline.options", "pipeline.types"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in ``path``, including importlib/__import__ calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def _is_gradio(module: str) -> bool:
    return module.split(".")[0] in ("gradio", "gradio_client")


def test_the_checker_sees_every_import_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, gradio as gr\nfrom gradio.components import Image\nimport importlib\n"
        "m = importlib.import_module('gradio_client')\nfrom . import sibling\n"
    )
    assert [m for _, m in imported_modules(sample) if _is_gradio(m)] == ["gradio", "gradio.components", "gradio_client"]


def test_no_pipeline_file_imports_gradio():
    files = sorted((ROOT / "pipeline").rglob("*.py"))
    assert files, "no pipeline sources found"
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if _is_gradio(module)
    ]
    assert not offenders, "pipeline/ must not import gradio:\n" + "\n".join(offenders)


def test_importing_every_pipeline_module_leaves_gradio_unloaded():
    code = (
        "import importlib, pkgutil, sys\n"
        "import pipeline\n"
        "names = [m.name for m in pkgutil.walk_packages(pipeline.__path__, 'pipeline.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'gradio_client'))\n"
        "assert not bad, bad\n"
        "print(len(names))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.strip().splitlines()[-1]) >= 10  # the walk really imported the stages


def test_studio_only_uses_the_pipeline_facade():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "studio").rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] == "pipeline" and module not in STUDIO_MAY_IMPORT
    ]
    assert not offenders, "studio/ must go through the pipeline facade:\n" + "\n".join(offenders)
