"""Class-scale grading end to end: ``llmkit grade-all`` on a small class of local git repositories.

The class (week 2, fast to grade) is laid out as ``gh classroom clone`` leaves it; every repository starts with
the released template ("Initial commit") and then holds one student's work:

    alice  the instructor's solution                          28
    bob    the untouched stub, then (new commit) a bug         0, then 19
    carol  bug_no_scaling                                     13
    dave   hostile_os_exit: crashes its worker four times     15 (and must not affect anyone else)
    erin   the notebook is a symbolic link to the instructor's solution: not followed, rejected, 0
    frank  correct_alternative, with a locked cell, the public tests and the workflow edited: 28, flagged
    grace  bug_naive_softmax before the deadline (25), then the solution after it (28, late)

Everything is graded once per module (``cls`` fixture): a first run, the same run again (nothing may change),
then a new commit for bob and a third run. A second, smaller class is killed halfway through grading and
resumed.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("nbgrader")

from autograder.gradebook import synthetic  # noqa: E402
from autograder.gradebook.exports import CLASSROOM_COLUMNS  # noqa: E402
from autograder.release import build_release  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SLUG = "w02_attention"
NOTEBOOK = "attention.ipynb"
START = dt.datetime(2026, 2, 2, 9, 0, tzinfo=dt.timezone.utc)
DEADLINE = dt.datetime(2026, 2, 9, 23, 59, tzinfo=dt.timezone.utc)
BEFORE = DEADLINE - dt.timedelta(days=1)
AFTER = DEADLINE + dt.timedelta(hours=5)
EXPECTED = {"alice": 28, "bob": 0, "carol": 13, "dave": 15, "erin": 0, "frank": 28, "grace": 25}
ALL_TESTS = 16


def llmkit(*args: str, env: dict | None = None, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("llmkit")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "autograder.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"llmkit {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def git(repo: Path, *args: str, when: dt.datetime = BEFORE) -> str:
    env = synthetic.git_env(when, "student")
    return subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def dump(db: Path, skip=("grading_runs",)) -> dict:
    """Every table's rows, as plain data (the gradebook's whole content)."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        return {t: con.execute(f"select * from {t} order by 1").fetchall() for t in tables if t not in skip}
    finally:
        con.close()


def query(db: Path, sql: str, *params):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def scores(db: Path) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for user, score, late, sha, status in query(
            db, "select s.username, b.auto_score, b.late, b.commit_sha, b.status from submissions b "
                "join students s on s.id = b.student_id order by b.committed_at, b.id"):
        out.setdefault(user, []).append((score, bool(late), sha, status))
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "release"
    try:
        build_release(ROOT / "assignments", out)
    except Exception:  # noqa: BLE001  (a week someone is still writing): release only the week graded here
        synthetic.build_week_release([SLUG], out)
    return out


class Class:
    pass


@pytest.fixture(scope="module")
def cls(tmp_path_factory, release) -> Class:
    c = Class()
    base = tmp_path_factory.mktemp("class")
    c.release = release
    c.folder = synthetic.make_class(base, SLUG, {"alice": "solution", "bob": "stub", "carol": "bug_no_scaling",
                                                 "dave": "hostile_os_exit"}, release, START, BEFORE)
    name = c.folder.name[: -len("-submissions")]
    repo = lambda user: c.folder / f"{name}-{user}"  # noqa: E731
    c.repo = repo
    # erin: the notebook is a link to the instructor's solution file on the grading machine
    synthetic.make_repo(repo("erin"), release, START)
    nb = repo("erin") / SLUG / NOTEBOOK
    nb.unlink()
    nb.symlink_to(ROOT / "assignments" / SLUG / NOTEBOOK)
    git(repo("erin"), "add", "-A")
    git(repo("erin"), "commit", "-q", "-m", "link")
    # frank: a correct alternative, but a locked cell, the public tests and the workflow are edited
    synthetic.make_repo(repo("frank"), release, START)
    synthetic.commit_notebook(repo("frank"), SLUG, "correct_alternative", release, BEFORE)
    data = json.loads((repo("frank") / SLUG / NOTEBOOK).read_text())
    locked = next(cell for cell in data["cells"] if cell.get("metadata", {}).get("nbgrader", {}).get("locked"))
    locked["source"] = "I changed the instructions.\n"
    (repo("frank") / SLUG / NOTEBOOK).write_text(json.dumps(data))
    with open(repo("frank") / SLUG / "public_tests.py", "a") as fh:
        fh.write("\n# always pass\n")
    with open(repo("frank") / ".github" / "workflows" / "check.yml", "a") as fh:
        fh.write("\n# edited\n")
    git(repo("frank"), "commit", "-q", "-am", "edits")
    # grace: a buggy notebook on time, the solution after the deadline
    synthetic.make_repo(repo("grace"), release, START)
    c.grace_on_time = synthetic.commit_notebook(repo("grace"), SLUG, "bug_naive_softmax", release, BEFORE)
    c.grace_late = synthetic.commit_notebook(repo("grace"), SLUG, "solution", release, AFTER)
    # a roster with Canvas identities for the Canvas export
    c.roster = base / "roster.csv"
    with open(c.roster, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["github_username", "name", "canvas_id", "sis_user_id", "sis_login_id", "section"])
        for i, user in enumerate(EXPECTED):
            w.writerow([user, user.title() + " Student", 1000 + i, f"SIS{i}", f"{user}@uni.edu", "S1"])

    c.db = base / "gb" / "gradebook.db"
    args = ["grade-all", "--classroom", str(c.folder), "-a", SLUG, "--deadline", DEADLINE.isoformat(),
            "--db", str(c.db), "--release", str(release), "--students", str(c.roster), "--call-timeout", "5"]
    c.args = args
    c.first = llmkit(*args)
    c.after_first = dump(c.db)
    c.scores_first = scores(c.db)
    c.second = llmkit(*args)
    c.after_second = dump(c.db)
    # bob commits again before the deadline: a new submission, the old one kept
    c.bob_old = c.scores_first["bob"][0][2]
    c.bob_new = synthetic.commit_notebook(repo("bob"), SLUG, "bug_causal_upper", release,
                                          BEFORE + dt.timedelta(hours=2))
    c.third = llmkit(*args)
    c.scores_third = scores(c.db)
    c.export = base / "export"
    return c


def test_every_submission_gets_its_exact_score(cls):
    got = {user: [s for s, late, _, _ in subs if not late][-1] for user, subs in cls.scores_first.items()}
    assert got == EXPECTED, cls.first.stderr[-3000:]
    assert "graded 8, already in the gradebook 0, could not grade 0" in cls.first.stdout


def test_each_submission_has_all_its_test_results_and_answers(cls):
    for sub_id, status, n_tests, n_answers in query(
            cls.db, "select b.id, b.status, (select count(*) from test_results t where t.submission_id = b.id), "
                    "(select count(*) from written_answers a where a.submission_id = b.id) from submissions b"):
        # a rejected notebook (erin's link) could not be read: every test failed, and there is no answer to keep
        assert (n_tests, n_answers) == (ALL_TESTS, 0 if status == "rejected" else 1), sub_id


def test_hostile_submission_does_not_affect_the_others(cls):
    rows = {user: json.loads(result) for user, result in query(
        cls.db, "select s.username, b.result from submissions b join students s on s.id = b.student_id")}
    assert rows["dave"]["isolation"]["worker_restarts"] == 4  # it did crash its worker, repeatedly
    assert rows["alice"]["score"] == 28 and rows["alice"]["isolation"]["worker_restarts"] == 0
    for user in ("alice", "carol", "frank"):  # graded while dave's worker was crashing beside them
        assert all(t["status"] != "error" for t in rows[user]["tests"]), user
    assert rows["alice"]["isolation"]["first_worker"] == "forked from the pre-warmed grading process"


def test_a_linked_notebook_is_not_followed(cls):
    (score, late, sha, status), = cls.scores_first["erin"]
    assert (score, status) == (0, "rejected")
    flags = json.loads(query(cls.db, "select flags from submissions b join students s on s.id=b.student_id "
                                     "where s.username='erin'")[0][0])
    assert any(f["kind"] == "notebook_link" for f in flags), flags
    snapshots = list((cls.db.parent / "store" / "snapshots").rglob("*"))
    assert snapshots and not any(p.is_symlink() for p in snapshots)


def test_flags_locked_cells_public_tests_and_workflows(cls):
    flags = json.loads(query(cls.db, "select flags from submissions b join students s on s.id=b.student_id "
                                     "where s.username='frank'")[0][0])
    kinds = {f["kind"]: f["detail"] for f in flags}
    assert kinds["modified_public_tests"] == f"{SLUG}/public_tests.py modified"
    assert kinds["modified_workflow"] == ".github/workflows/check.yml modified"
    assert "locked cell" in kinds["locked_cell"] and "modified" in kinds["locked_cell"]
    clean = json.loads(query(cls.db, "select flags from submissions b join students s on s.id=b.student_id "
                                     "where s.username='alice'")[0][0])
    assert clean == []


def test_late_commit_is_graded_flagged_and_the_on_time_one_counts(cls):
    grace = cls.scores_first["grace"]
    assert [(s, late, sha) for s, late, sha, _ in grace] == [(25, False, cls.grace_on_time), (28, True, cls.grace_late)]
    late_by = query(cls.db, "select late_by_s from submissions where commit_sha=?", cls.grace_late)[0][0]
    assert late_by == pytest.approx(5 * 3600)
    assert query(cls.db, "select deadline from assignments")[0][0].startswith("2026-02-09 23:59")


def test_rerun_on_the_same_commits_changes_nothing(cls):
    assert "graded 0, already in the gradebook 8" in cls.second.stdout
    assert cls.after_second == cls.after_first


def test_new_commit_adds_a_submission_and_keeps_the_old_one(cls):
    # bob's old commit is no longer the last one before the deadline: 7 found again, 1 new
    assert "graded 1, already in the gradebook 7" in cls.third.stdout
    bob = cls.scores_third["bob"]
    assert [(s, sha) for s, _, sha, _ in bob] == [(0, cls.bob_old), (19, cls.bob_new)]
    old_rows = [r for r in cls.after_first["submissions"] if r[4] == cls.bob_old]
    assert [r for r in dump(cls.db)["submissions"] if r[4] == cls.bob_old] == old_rows  # untouched


def _export(cls, *extra) -> Path:
    out = cls.export / "-".join(extra or ("default",))
    llmkit("gradebook", "export", "--db", str(cls.db), "--out", str(out), *extra)
    return out


def test_class_csv_is_a_superset_of_classroom_grades(cls):
    with open(_export(cls) / "class.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, {r["github_username"]: r for r in reader}
    assert header[:10] == CLASSROOM_COLUMNS
    for col in ("commit_sha", "late", "device", "flags", "auto_points", "manual_points"):
        assert col in header
    assert len([h for h in header if h.startswith("test:")]) == ALL_TESTS
    assert sorted(rows) == sorted(EXPECTED)
    bob = rows["bob"]  # counted: the new on-time commit
    assert (bob["commit_sha"], bob["auto_points"], bob["late"], bob["device"]) == (cls.bob_new, "19", "false", "cpu")
    assert rows["grace"]["commit_sha"] == cls.grace_on_time and rows["grace"]["points_available"] == "30"
    assert rows["alice"]["test:softmax::test_softmax_is_stable"] == "2"
    assert rows["carol"]["exercise:scaled_dot_product_attention"] == "1"
    assert "public_tests.py modified" in rows["frank"]["flags"]
    assert rows["alice"]["submission_timestamp"] == BEFORE.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert rows["alice"]["student_repository_name"].endswith("-alice")
    latest = {r["github_username"]: r for r in csv.DictReader(open(_export(cls, "--policy", "latest") / "class.csv"))}
    assert (latest["grace"]["commit_sha"], latest["grace"]["late"], latest["grace"]["auto_points"]) == \
        (cls.grace_late, "true", "28")


def test_canvas_csv_and_student_json(cls):
    out = _export(cls)
    with open(out / "canvas.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Week 2: Attention"]
    assert rows[1][0].strip() == "Points Possible" and rows[1][5] == "30"
    alice = next(r for r in rows if r[1] == "1000")
    assert alice[:5] == ["Alice Student", "1000", "SIS0", "alice@uni.edu", "S1"]
    assert alice[5] == "28"  # the written answer is not graded yet
    doc = json.loads((out / "students" / "grace.json").read_text())
    week = doc["weeks"][0]
    assert doc["schema"] == "llmkit/gradebook-student/v1" and week["result"]["schema"] == "llmkit/result/v1"
    assert [a["late"] for a in week["attempts"]] == [False, True] and week["counted"]["late"] is False


def test_manual_scores_count_in_the_totals_and_keep_history(cls, tmp_path):
    db = tmp_path / "gb.db"
    con, copy = sqlite3.connect(cls.db), sqlite3.connect(db)
    con.backup(copy)
    con.close()
    copy.close()
    q = "written_self_attention"
    listed = llmkit("gradebook", "manual", "list", "--db", str(db), "-a", SLUG, "--status", "pending").stdout
    assert "alice" in listed and "[pending]" in listed and "bob" not in listed  # bob's stub has no answer
    llmkit("gradebook", "manual", "score", "--db", str(db), "-a", SLUG, "-s", "alice", "-q", q, "-p", "1",
           "-g", "ta-ann", "-c", "too short")
    llmkit("gradebook", "manual", "score", "--db", str(db), "-a", SLUG, "-s", "alice", "-q", q, "-p", "2",
           "-g", "ta-bo", "-c", "regraded: complete")
    bad = llmkit("gradebook", "manual", "score", "--db", str(db), "-a", SLUG, "-s", "alice", "-q", q, "-p", "3",
                 "-g", "ta-bo", check=False)
    assert bad.returncode == 2 and "between 0 and 2" in bad.stderr
    history = query(db, "select points, grader, comment, source from manual_scores order by id")
    assert history == [(1.0, "ta-ann", "too short", "cli"), (2.0, "ta-bo", "regraded: complete", "cli")]
    rows = {r["github_username"]: r for r in csv.DictReader(open(
        _export_db(db, tmp_path / "out") / "class.csv"))}
    assert (rows["alice"]["points_awarded"], rows["alice"]["manual_points"], rows["alice"]["manual_pending"]) == \
        ("30", "2", "0")
    # the others appended code to the stub and left "YOUR ANSWER HERE": unanswered, 0, nothing pending
    assert (rows["carol"]["manual_pending"], rows["carol"]["manual_points"]) == ("0", "0")


def _export_db(db: Path, out: Path) -> Path:
    llmkit("gradebook", "export", "--db", str(db), "--out", str(out))
    return out


def test_manual_scores_round_trip_through_nbgrader(cls, tmp_path):
    from nbgrader.api import Gradebook as NbGradebook

    db = tmp_path / "gb.db"
    con, copy = sqlite3.connect(cls.db), sqlite3.connect(db)
    con.backup(copy)
    con.close()
    copy.close()
    q, course = "written_self_attention", tmp_path / "course"
    llmkit("gradebook", "manual", "score", "--db", str(db), "-a", SLUG, "-s", "carol", "-q", q, "-p", "1",
           "-g", "ta-ann", "-c", "partly")
    out = llmkit("gradebook", "nbgrader-export", "--db", str(db), "-a", SLUG, "--course", str(course)).stdout
    assert "exported 7 submissions" in out
    assert (course / "autograded" / "alice" / SLUG / "attention.ipynb").is_file()
    ngb = NbGradebook(f"sqlite:///{course / 'gradebook.db'}")
    try:
        carol = ngb.find_grade(q, "attention", SLUG, "carol")
        assert carol.manual_score == 1.0  # llmkit's score went to nbgrader
        alice = ngb.find_grade(q, "attention", SLUG, "alice")
        assert alice.manual_score is None and alice.needs_manual_grade
        assert ngb.find_grade(q, "attention", SLUG, "bob").needs_manual_grade is False  # unanswered
        alice.manual_score = 1.5  # what a TA does in the formgrader
        ngb.find_comment(q, "attention", SLUG, "alice").manual_comment = "good, but the mask is not explained"
        ngb.db.commit()
    finally:
        ngb.close()
    out = llmkit("gradebook", "nbgrader-import", "--db", str(db), "-a", SLUG, "--course", str(course),
                 "--grader", "ta-cy").stdout
    assert "imported 1 manual scores (1 unchanged" in out
    assert query(db, "select points, grader, comment, source from manual_scores order by id")[-1] == \
        (1.5, "ta-cy", "good, but the mask is not explained", "nbgrader")
    rows = {r["github_username"]: r for r in csv.DictReader(open(_export_db(db, tmp_path / "out") / "class.csv"))}
    assert rows["alice"]["points_awarded"] == "29.5" and rows["alice"]["written:" + q] == "1.5"
    again = llmkit("gradebook", "nbgrader-import", "--db", str(db), "-a", SLUG, "--course", str(course)).stdout
    assert "imported 0 manual scores" in again


def test_forkserver_grades_exactly_as_llmkit_grade(cls, tmp_path):
    """The import-once path must not change a single result: carol graded again with `llmkit grade` per
    submission (--mode subprocess) gives the same tests, points and messages."""
    db = tmp_path / "sub.db"
    carol = next(p for p in cls.folder.iterdir() if p.name.endswith("-carol"))
    folder = tmp_path / "one-submissions"
    folder.mkdir()
    shutil.copytree(carol, folder / carol.name, symlinks=True)
    llmkit("grade-all", "--classroom", str(folder), "-a", SLUG, "--db", str(db), "--mode", "subprocess",
           "--release", str(cls.release), "--no-progress")
    fresh = json.loads(query(db, "select result from submissions")[0][0])
    forked = json.loads(query(cls.db, "select result from submissions b join students s on s.id=b.student_id "
                                      "where s.username='carol'")[0][0])

    def outcome(d):
        return [(t["id"], t["status"], t["points"], t["message"]) for t in d["tests"]], d["score"], d["manual"]

    assert outcome(fresh) == outcome(forked)
    assert fresh["isolation"]["level"] == forked["isolation"]["level"]
    assert fresh["isolation"].get("first_worker") is None


# -- a run killed halfway ----------------------------------------------------------------------------------
def _marked(mark: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if mark.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_killed_run_resumes_without_regrading_and_without_half_rows(release, tmp_path):
    kinds = {"u1": "solution", "u2": "correct_alternative", "u3": "solution", "u4": "correct_alternative",
             "u5": "solution"}
    folder = synthetic.make_class(tmp_path, SLUG, kinds, release, START, BEFORE)
    db = tmp_path / "gb" / "gradebook.db"
    args = ["grade-all", "--classroom", str(folder), "-a", SLUG, "--db", str(db), "--release", str(release),
            "--workers", "1", "--no-progress"]
    script = Path(sys.executable).with_name("llmkit")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "autograder.cli"]
    mark = f"LLMKIT_TEST_RUN={uuid.uuid4().hex}"
    proc = subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, mark.split("=")[0]: mark.split("=")[1]})
    deadline = time.monotonic() + 240
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    done = query(db, "select count(*) from submissions")[0][0]
                except sqlite3.OperationalError:
                    done = 0
                if done >= 1:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # the run, its fork server and its grading processes
    finally:
        proc.wait()
    time.sleep(1.0)
    leftovers = _marked(mark.split("=")[1])
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, "processes of the killed run were still running"
    assert query(db, "pragma integrity_check") == [("ok",)]
    before = dump(db)
    killed_at = len(before["submissions"])
    assert 1 <= killed_at < len(kinds), killed_at
    for sub_id, n in query(db, "select b.id, (select count(*) from test_results t where t.submission_id=b.id) "
                               "from submissions b"):
        assert n == ALL_TESTS, f"submission {sub_id} has {n} test rows: half-written"
    resumed = llmkit(*args)
    assert f"graded {len(kinds) - killed_at}, already in the gradebook {killed_at}, could not grade 0" in resumed.stdout
    after = dump(db)
    assert after["submissions"][:killed_at] == before["submissions"]  # kept as they were, not regraded
    assert [r[0] for r in query(db, "select auto_score from submissions")] == [28] * len(kinds)
