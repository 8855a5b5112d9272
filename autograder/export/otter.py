"""``llmkit export otter``: a Gradescope autograder zip built with otter-grader's own ``otter generate``.

Gradescope keeps an autograder zip from students and runs it in a container the course controls, so the zip
carries the live suite: the kit itself (``files/llmkit``, installed by the image's setup), one otter test
file per exercise with one ``test_case`` per hidden test (same points), and ``otter_config.json`` naming the
``LlmkitGrader`` plugin (``otter_plugin.py``). Grade a submission locally the way Gradescope would with
``otter run -a autograder.zip notebook.ipynb``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..assignments import get_assignment
from ..release import KIT_ROOT

TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
KIT_FILES = ("autograder", "reference", "pyproject.toml", "README.md")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


def hidden_tests(slug: str) -> list[dict]:
    """The week's hidden tests (id, exercise, points, description, device) from pytest's collection."""
    import importlib

    import pytest

    suite = Path(importlib.import_module(f"autograder.suites.{slug}").__file__).parent
    found: list[dict] = []

    class Collector:
        def pytest_configure(self, config):
            for marker in ("points(n)", "exercise(name)", "requires_device(name)"):
                config.addinivalue_line("markers", marker)

        def pytest_collection_modifyitems(self, items):
            for item in items:
                def arg(name):
                    m = item.get_closest_marker(name)
                    return m.args[0] if m and m.args else None
                doc = (item.function.__doc__ or item.name).strip().splitlines()[0]
                found.append({"id": f"{arg('exercise')}::{item.name}", "exercise": arg("exercise"),
                              "name": item.name, "points": arg("points"), "description": doc,
                              "device": arg("requires_device")})

    saved = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            code = pytest.main([str(suite), "--collect-only", "-q", "-p", "no:cacheprovider", "-c",
                                str(suite.parent / "pytest.ini"), "--rootdir", str(suite), "-W", "ignore"],
                               plugins=[Collector()])
    finally:
        if saved is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved
    if code != 0 or not found:
        raise RuntimeError(f"could not collect the hidden suite of {slug} (pytest exit {code})")
    return found


def test_file(exercise: str, tests: list[dict]) -> str:
    """One otter test file (exception-based format) for one exercise."""
    lines = [f'"""llmkit hidden tests for the exercise {exercise}: each case reads the kit\'s grading result."""',
             "", "from otter.test_files import test_case", "", "OK_FORMAT = False", "",
             f"name = {exercise!r}", "points = None", ""]
    for i, t in enumerate(tests):
        lines += ["", f"@test_case(name={t['id']!r}, points={t['points']}, hidden=False)",
                  f"def case_{i}(env):", f"    {t['description']!r}",
                  "    from autograder.export.otter_plugin import check", "", f"    check({t['id']!r})", ""]
    return "\n".join(lines)


@contextlib.contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def export(slug: str, out: Path, *, device: str = "cpu", python: str = "3.11", call_timeout_s: float = 10.0) -> dict:
    from otter.generate import main as otter_generate

    assignment = get_assignment(slug)
    tests = [t for t in hidden_tests(slug) if t["device"] in (None, device)]
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmkit-otter-") as tmp:
        stage = Path(tmp)
        (stage / "tests").mkdir()
        by_exercise: dict[str, list[dict]] = {}
        for t in tests:
            by_exercise.setdefault(t["exercise"], []).append(t)
        for index, exercise in enumerate(ex.name for ex in assignment.exercises):
            if exercise in by_exercise:
                (stage / "tests" / f"q{index + 1:02d}_{exercise}.py").write_text(test_file(exercise, by_exercise[exercise]))
        kit = stage / "llmkit"
        kit.mkdir()
        for name in KIT_FILES:
            src = KIT_ROOT / name
            if src.is_dir():
                shutil.copytree(src, kit / name, ignore=SKIP)
            else:
                shutil.copy(src, kit / name)
        (stage / "requirements.txt").write_text(
            f"--extra-index-url {TORCH_INDEX}\ntorch==2.13.0\n/autograder/source/files/llmkit\n")
        config = {"lang": "python", "show_stdout": False, "show_hidden": True, "show_all_public": True,
                  "points_possible": sum(t["points"] for t in tests),
                  "plugins": [{"autograder.export.otter_plugin.LlmkitGrader":
                               {"assignment": slug, "device": device, "call_timeout_s": call_timeout_s}}]}
        (stage / "otter_config.json").write_text(json.dumps(config, indent=2))
        with _chdir(stage):
            otter_generate(tests_dir="tests", output_path=str(out), config="otter_config.json",
                           requirements="requirements.txt", no_environment=True, files=["llmkit"],
                           python_version=python)
    return {"zip": str(out), "tests": len(tests), "points": sum(t["points"] for t in tests),
            "exercises": list(by_exercise)}
