"""Result formats (``autograder/report.py``): the kit's JSON, the Markdown summary, GitHub Classroom's format.

Student-controlled text (exception messages, written answers, syntax errors) must not be able to inject
GitHub workflow commands, terminal escapes or HTML into the grader's output.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from autograder import report
from autograder.grading import SCHEMA, Result
from autograder.grading import TestRecord as Record  # aliased: pytest would try to collect Test*

HOSTILE = "wrong value\n::error::pwned\n::add-mask::secret\n::set-output name=score::100\x1b[31mred\x1b[0m\r\x07<script>alert(1)</script>|x|"
WORKFLOW_COMMAND = re.compile(r"^\s*::", re.MULTILINE)


def _result(**kw) -> Result:
    tests = [
        Record("softmax::test_rows", "softmax", "rows sum to one", 2, 2, "pass", "", 0.0123),
        Record("softmax::test_stable", "softmax", "stable for large inputs", 0, 3, "fail", HOSTILE, 0.5),
        Record("causal_mask::test_shape", "causal_mask", "shape and dtype", 3, 3, "pass", "", 0.001),
        Record("scaled_dot_product_attention::test_ref", "scaled_dot_product_attention", "matches the reference",
                   0, 4, "error", "grader error (KeyError) in this test; please tell your course staff", 1.25),
        Record("scaled_dot_product_attention::test_mask", "scaled_dot_product_attention", "masked weights are 0",
                   4, 4, "pass", "", 0.2),
    ]
    defaults = dict(
        assignment="w02_attention", submission="student/attention.ipynb", tests=tests,
        manual=[{"id": "written_self_attention", "prompt": "explain", "max_points": 2, "status": "pending",
                 "answer": "::error::from the answer\n<b>bold</b>", "answered": True}],
        warnings=["syntax error in cell 3, line 2: ::warning::x"],
        banned={"softmax": "`softmax` uses `softmax` ::error::x"},
        isolation={"level": "nobody+rlimits"}, limits={"call_timeout_s": 10.0, "memory_bytes": 4 << 30},
        extraction={"statements": 5, "skipped": 2, "syntax_errors": ["cell 3, line 2: \x1b]0;title\x07 ::debug::y"]},
        submission_sha256="ab" * 32, duration_s=3.5, environment={"python": "3.11"},
    )
    defaults.update(kw)
    return Result(**defaults)


# ---------------------------------------------------------------------------------------------
# clean
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["::error::x", "::add-mask::hunter2", "::set-output name=a::b", "::stop-commands::t",
                                     "  ::warning file=a.py::x", "::::error::x", ":::error::x"])
def test_clean_neutralises_workflow_commands(command):
    for text in (command, f"before\n{command}", f"a\r\n{command}"):
        out = report.clean(text)
        assert not WORKFLOW_COMMAND.search(out), repr(out)
    assert "error" in report.clean("::error::x")  # the text stays readable


def test_clean_removes_terminal_escapes_and_control_characters():
    out = report.clean("a\x1b[31mred\x1b[0m\x00\x07\x08\x0b\x0c\r\x7fz\x1b]0;title\x07")
    assert "\x1b" not in out
    assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in out) and "\x7f" not in out
    assert out.startswith("a?[31mred?[0m")
    assert report.clean("line 1\n\tline 2") == "line 1\n\tline 2"  # newlines and tabs are fine
    assert report.clean(42) == "42"


def test_clean_truncates_long_text():
    long = "x" * 10_000
    out = report.clean(long)
    assert len(out) <= report.MAX_MESSAGE and out.endswith("...(truncated)")
    assert report.clean("y" * 100, limit=50).endswith("...(truncated)") and len(report.clean("y" * 100, limit=50)) <= 50
    assert report.clean("short") == "short"
    exact = "z" * report.MAX_MESSAGE
    assert report.clean(exact) == exact


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def test_to_json_schema_scores_and_exercises():
    result = _result()
    data = report.to_json(result)
    assert data["schema"] == SCHEMA == "llmkit/result/v1"
    assert data["score"] == 2 + 0 + 3 + 0 + 4 == result.score
    assert data["max_score"] == 2 + 3 + 3 + 4 + 4 == 16 == result.max_score
    assert data["exercises"] == [
        {"name": "softmax", "score": 2, "max_score": 5, "banned": data["exercises"][0]["banned"]},
        {"name": "causal_mask", "score": 3, "max_score": 3, "banned": None},
        {"name": "scaled_dot_product_attention", "score": 4, "max_score": 8, "banned": None},
    ]
    assert sum(e["score"] for e in data["exercises"]) == data["score"]
    assert [t["id"] for t in data["tests"]] == [t.id for t in result.tests]
    assert [t["status"] for t in data["tests"]] == ["pass", "fail", "pass", "error", "pass"]
    assert data["tests"][0]["duration"] == 0.0123
    json.loads(json.dumps(data))  # plain JSON all the way down


def test_to_json_cleans_every_student_string():
    data = report.to_json(_result())
    student_text = json.dumps([data["tests"], data["exercises"], data["manual"], data["warnings"],
                               data["extraction"]], ensure_ascii=False).replace(":\u200b:", "")
    assert student_text.count("::") == len(data["tests"])  # only the trusted test ids ("softmax::test_rows")
    for value in (data["tests"][1]["message"], data["exercises"][0]["banned"], data["manual"][0]["answer"],
                  data["warnings"][0], data["extraction"]["syntax_errors"][0]):
        assert not WORKFLOW_COMMAND.search(value) and "\x1b" not in value and "\x07" not in value
    assert data["tests"][1]["message"].startswith("wrong value\n")


def test_long_written_answers_are_kept_longer_than_messages():
    answer = "word " * 1000  # 5000 characters: a long answer, not an error message
    data = report.to_json(_result(manual=[{"id": "q", "prompt": "p", "max_points": 2, "status": "pending",
                                           "answer": answer, "answered": True}],
                                  tests=[Record("a::b", "a", "d", 0, 1, "fail", "m" * 5000, 0.0)]))
    assert data["manual"][0]["answer"] == answer
    assert len(data["tests"][0]["message"]) <= report.MAX_MESSAGE


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def test_markdown_escapes_html_and_pipes_from_students():
    md = report.to_markdown(_result())
    assert md.startswith("## w02_attention: 9 / 16 points")
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "\\|x\\|" in md  # a pipe in a message cannot break the table
    assert not WORKFLOW_COMMAND.search(md)
    assert "\x1b" not in md and "\x07" not in md
    assert "| softmax | 2 / 5 (banned API) |" in md
    assert "| causal_mask | 3 / 3 |" in md
    assert "**softmax**: stable for large inputs (0/3)" in md
    assert "rows sum to one" not in md  # passing tests are not listed under "What to fix"
    assert "written_self_attention (2 points): answer received, awaiting grading" in md
    assert "syntax error in cell 3" in md
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert all(ln.count("|") - ln.count("\\|") == 3 for ln in table)


def test_markdown_of_a_rejected_notebook():
    result = Result(assignment="w02_attention", submission="x", status="rejected",
                    warnings=["attention.ipynb is not valid notebook JSON <img src=x onerror=alert(1)>"],
                    tests=[Record("softmax::t", "softmax", "d", 0, 5, "fail", "unreadable", 0.0)])
    md = report.to_markdown(result)
    assert "**The notebook could not be graded:** attention.ipynb is not valid notebook JSON &lt;img" in md
    assert "<img" not in md
    assert "## w02_attention: 0 / 5 points" in md


# ---------------------------------------------------------------------------------------------
# GitHub Classroom
# ---------------------------------------------------------------------------------------------


def test_classroom_format_has_exactly_the_runner_keys():
    data = report.to_classroom(_result())
    assert set(data) == {"version", "status", "max_score", "tests"}
    assert data["version"] == 1 and data["status"] == "fail" and data["max_score"] == 16
    assert len(data["tests"]) == 5
    for t in data["tests"]:
        assert set(t) == {"name", "status", "score", "message", "line_no", "duration"}
        assert t["status"] in ("pass", "fail")
        assert isinstance(t["score"], int) and isinstance(t["duration"], int) and t["line_no"] == 0
    assert [t["status"] for t in data["tests"]] == ["pass", "fail", "pass", "fail", "pass"]  # error counts as fail
    assert [t["score"] for t in data["tests"]] == [2, 0, 3, 0, 4]
    assert data["tests"][0]["name"] == "softmax: rows sum to one"
    assert data["tests"][3]["duration"] == 1250  # milliseconds
    assert not WORKFLOW_COMMAND.search(data["tests"][1]["message"])
    assert sum(t["score"] for t in data["tests"]) == report.to_json(_result())["score"]


def test_classroom_status_pass_only_with_full_marks():
    full = [Record("a::t", "a", "d", 2, 2, "pass", "", 0.0), Record("b::t", "b", "d", 1, 1, "pass", "", 0.0)]
    assert report.to_classroom(_result(tests=full))["status"] == "pass"
    partial = [full[0], Record("b::t", "b", "d", 0, 1, "fail", "no", 0.0)]
    assert report.to_classroom(_result(tests=partial))["status"] == "fail"


def test_classroom_b64_decodes_to_the_classroom_result():
    result = _result()
    encoded = report.classroom_b64(result)
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", encoded)  # one line, safe for $GITHUB_OUTPUT
    assert json.loads(base64.b64decode(encoded)) == report.to_classroom(result)
