"""The otter-grader side of ``llmkit export otter``: a plugin that grades with the kit, and the check the
generated test files call.

Otter executes a submitted notebook in a Jupyter kernel and then runs its test files there. The kit never
executes a notebook (only its definitions, in the sandboxed worker), so the plugin:

* ``before_execution``: grades the submission with ``autograder.grading.grade`` (hidden suite, live
  reference, sandboxed worker), writes the kit's result next to the submission, and hands otter an empty
  notebook to execute, so no student code runs in otter's kernel;
* the generated test files (one per exercise, one ``test_case`` per hidden test with its points) call
  ``check(test_id)``, which reads that result and fails with the kit's own message.

So otter's score is the kit's score by construction, and Gradescope shows each hidden test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

try:  # the plugin base class exists only where otter-grader is installed (the grading image)
    from otter.plugins import AbstractOtterPlugin
except ImportError:  # pragma: no cover
    AbstractOtterPlugin = object

RESULT_FILE = ".llmkit-otter-result.json"


class LlmkitGrader(AbstractOtterPlugin):
    """otter_config.json: ``{"plugins": [{"autograder.export.otter_plugin.LlmkitGrader": {"assignment": "w02_attention"}}]}``"""

    def before_execution(self, submission):
        import nbformat

        from .. import report
        from ..grading import grade
        from ..sandbox.supervisor import Limits

        slug = self.plugin_config["assignment"]
        limits = Limits(call_timeout_s=float(self.plugin_config.get("call_timeout_s", 10.0)))
        path = Path(self.submission_path)
        try:
            data = report.to_json(grade(path, slug, limits, device=self.plugin_config.get("device", "cpu")))
        except RuntimeError as exc:  # the grader could not run: every test fails with the reason
            data = {"status": "error", "tests": [], "error": str(exc)}
        (path.parent / RESULT_FILE).write_text(json.dumps(data))
        return nbformat.v4.new_notebook()  # otter's kernel executes nothing of the submission

    def generate_report(self):
        return ""


def check(test_id: str) -> None:
    """Called by a generated otter test: pass if the kit passed ``test_id``, else fail with its message."""
    path = Path(os.getcwd()) / RESULT_FILE
    if not path.is_file():
        raise AssertionError("the llmkit grader did not run (is the LlmkitGrader plugin in otter_config.json?)")
    data = json.loads(path.read_text())
    if data.get("status") == "error":
        raise AssertionError(f"grading could not run: {data.get('error')}; please tell your course staff")
    for test in data["tests"]:
        if test["id"] == test_id:
            if test["status"] != "pass":
                raise AssertionError(test["message"] or "failed")
            return
    if data.get("status") == "rejected":
        raise AssertionError(data["warnings"][0] if data.get("warnings") else "the notebook could not be graded")
    raise AssertionError(f"{test_id} was not graded on this run (a test for another device?)")
