"""Result formats: the kit's JSON, a Markdown summary, and GitHub Classroom's runner format.

Every string that may carry student-controlled text (exception messages, written answers) goes
through ``clean`` first, so a submission cannot inject GitHub workflow commands (``::error::``,
``::add-mask::``...), terminal escapes or HTML into the grader's output.
"""

from __future__ import annotations

import base64
import json
import re

from .grading import SCHEMA, Result

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x1b]")
MAX_MESSAGE = 1500


def clean(text: str, limit: int = MAX_MESSAGE) -> str:
    text = _CONTROL.sub("?", str(text))
    text = text.replace("::", ":\u200b:")  # no line can start a workflow command
    return text if len(text) <= limit else text[: limit - 15] + " ...(truncated)"


def _md(text: str) -> str:
    """Text shown in the Markdown summary: no raw HTML from submissions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def to_json(result: Result) -> dict:
    return {
        "schema": SCHEMA,
        "assignment": result.assignment,
        "submission": result.submission,
        "submission_sha256": result.submission_sha256,
        "status": result.status,
        "score": result.score,
        "max_score": result.max_score,
        "exercises": [
            {"name": name, "score": got, "max_score": top, "banned": clean(result.banned[name]) if name in result.banned else None}
            for name, (got, top) in result.exercise_scores().items()
        ],
        "tests": [
            {"id": t.id, "exercise": t.exercise, "description": t.description, "points": t.points,
             "max_points": t.max_points, "status": t.status, "message": clean(t.message),
             "duration": round(t.duration, 4)}
            for t in result.tests
        ],
        "manual": [dict(q, answer=clean(q["answer"], 20000)) for q in result.manual],
        "warnings": [clean(w) for w in result.warnings],
        "isolation": result.isolation,
        "limits": result.limits,
        "extraction": {**result.extraction,
                       "syntax_errors": [clean(e) for e in result.extraction.get("syntax_errors", [])],
                       "load_errors": [clean(e) for e in result.extraction.get("load_errors", [])]},
        "environment": result.environment,
        "duration_s": result.duration_s,
        "student_calls": result.student_calls,
    }


def to_markdown(result: Result) -> str:
    data = to_json(result)
    lines = [f"## {data['assignment']}: {data['score']} / {data['max_score']} points", ""]
    if data["status"] == "rejected":
        lines += [f"**The notebook could not be graded:** {_md(data['warnings'][0])}", ""]
    lines += ["| exercise | score |", "|---|---|"]
    lines += [f"| {e['name']} | {e['score']} / {e['max_score']}{' (banned API)' if e['banned'] else ''} |"
              for e in data["exercises"]]
    failed = [t for t in data["tests"] if t["status"] != "pass"]
    if failed:
        lines += ["", "### What to fix", ""]
        for t in failed:
            message = _md(t["message"]).replace("\n", "<br>")
            lines.append(f"- **{t['exercise']}**: {t['description']} ({t['points']}/{t['max_points']}): {message}")
    if data["manual"]:
        lines += ["", "### Graded by your TA", ""]
        lines += [f"- {q['id']} ({q['max_points']} points): "
                  f"{'answer received, awaiting grading' if q['answered'] else 'no answer written yet'}"
                  for q in data["manual"]]
    if data["warnings"] and data["status"] != "rejected":
        lines += ["", "### Warnings", ""] + [f"- {_md(w)}" for w in data["warnings"]]
    iso = data["isolation"]
    lines += ["", f"<sub>graded in {data['duration_s']} s; isolation: {iso.get('level', 'n/a')}; "
              f"per-call time limit {data['limits'].get('call_timeout_s')} s; "
              f"memory limit {data['limits'].get('memory_bytes', 0) >> 20} MiB</sub>", ""]
    return "\n".join(lines)


def to_classroom(result: Result) -> dict:
    """GitHub Classroom's autograding runner result (what ``autograding-grading-reporter`` decodes)."""
    data = to_json(result)
    tests = [{"name": f"{t['exercise']}: {t['description']}", "status": "pass" if t["status"] == "pass" else "fail",
              "score": t["points"], "message": t["message"], "line_no": 0, "duration": round(t["duration"] * 1000)}
             for t in data["tests"]]
    status = "pass" if data["score"] == data["max_score"] else "fail"
    return {"version": 1, "status": status, "max_score": data["max_score"], "tests": tests}


def classroom_b64(result: Result) -> str:
    return base64.b64encode(json.dumps(to_classroom(result)).encode()).decode()
