"""The gradebook's parts without grading anything: collecting from git, similarity, the manual queue, the web page
and the TA report in a real headless browser. Results are made-up ``llmkit/result/v1`` documents recorded with
``grade_all.record``, so these tests take seconds."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from autograder.gradebook import collect, grade_all, manual, queries, similarity, synthetic, ta_report  # noqa: E402
from autograder.gradebook.models import Gradebook, Submission  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SLUG = "w02_attention"
NB = "attention.ipynb"
T0 = dt.datetime(2026, 2, 2, 9, 0, tzinfo=dt.timezone.utc)
DEADLINE = dt.datetime(2026, 2, 9, 23, 59, tzinfo=dt.timezone.utc)
EXERCISES = {"softmax": 5, "causal_mask": 3, "scaled_dot_product_attention": 10, "multi_head_attention": 10}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return synthetic.build_week_release([SLUG], tmp_path_factory.mktemp("rel") / "release")


def git(repo: Path, *args: str, when: dt.datetime) -> str:
    return subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=repo, env=synthetic.git_env(when),
                          check=True, capture_output=True, text=True).stdout.strip()


# -- collecting ------------------------------------------------------------------------------------------
def test_roster_clones_then_fetches_and_picks_the_last_commit_before_the_deadline(release, tmp_path):
    remote = tmp_path / "remotes" / "w02-attention-ann"
    synthetic.make_repo(remote, release, T0)
    early = synthetic.commit_notebook(remote, SLUG, "stub", release, DEADLINE - dt.timedelta(days=2))
    on_time = synthetic.commit_notebook(remote, SLUG, "bug_no_scaling", release, DEADLINE - dt.timedelta(minutes=1))
    roster = tmp_path / "roster.csv"
    roster.write_text(f"github_username,repository_url,deadline\nann,{remote},{DEADLINE.isoformat()}\n")
    store = tmp_path / "store"
    targets = collect.roster_targets(roster, [SLUG], store, None)
    assert [(t.username, t.deadline) for t in targets] == [("ann", DEADLINE)]
    assert (targets[0].git_dir / "HEAD").is_file() and targets[0].git_dir.is_relative_to(store)
    got = collect.commits_to_grade(targets[0])
    assert [(sha, late) for sha, _, late in got] == [(on_time, False)] and early != on_time
    # after the deadline the student pushes again: fetched, graded as a late submission next to the on-time one
    late = synthetic.commit_notebook(remote, SLUG, "solution", release, DEADLINE + dt.timedelta(hours=3))
    targets = collect.roster_targets(roster, [SLUG], store, None)
    got = collect.commits_to_grade(targets[0])
    assert [(sha, is_late) for sha, _, is_late in got] == [(on_time, False), (late, True)]
    assert collect.commits_to_grade(targets[0], include_late=False) == got[:1]
    cands = collect.candidates(targets, store, release)
    assert cands[1].late and cands[1].late_by_s == pytest.approx(3 * 3600)
    nb = json.loads((cands[0].snapshot / SLUG / NB).read_text())
    assert "BUG: no / math.sqrt(d_k)" in "".join(nb["cells"][-1]["source"])  # the on-time work, not the late one


def test_only_a_regular_notebook_file_is_taken_from_the_commit(release, tmp_path):
    repo = tmp_path / "w02-attention-submissions" / "w02-attention-eve"
    synthetic.make_repo(repo, release, T0)
    (repo / SLUG / NB).unlink()
    (repo / SLUG / NB).symlink_to("/etc/passwd")
    git(repo, "add", "-A", when=T0)
    git(repo, "commit", "-q", "-m", "x", when=T0)
    (cand,) = collect.candidates(collect.classroom_targets(repo.parent, SLUG, None), tmp_path / "store", release)
    assert cand.target.username == "eve"
    assert not (cand.snapshot / SLUG / NB).exists() and cand.notebook_sha256 == ""
    assert [f["kind"] for f in cand.flags] == ["notebook_link"]


def test_release_comparison_flags(release, tmp_path):
    repo = tmp_path / "w02-attention-submissions" / "w02-attention-max"
    synthetic.make_repo(repo, release, T0)
    (repo / ".github" / "workflows" / "check.yml").unlink()
    (repo / ".github" / "workflows" / "mine.yml").write_text("on: push\n")
    (repo / "autograder" / "student" / "check.py").write_text("def check(*a): return True\n")
    git(repo, "add", "-A", when=T0)
    git(repo, "commit", "-q", "-m", "x", when=T0)
    (cand,) = collect.candidates(collect.classroom_targets(repo.parent, SLUG, None), tmp_path / "store", release)
    assert sorted(f["detail"] for f in cand.flags) == [
        ".github/workflows/check.yml deleted", ".github/workflows/mine.yml added",
        "autograder/student/check.py modified"]


def test_deadline_parsing():
    assert collect.parse_deadline("2026-03-01T23:59:00-05:00") == dt.datetime(2026, 3, 2, 4, 59, tzinfo=dt.timezone.utc)
    assert collect.parse_deadline("2026-03-01 23:59Z") == dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.timezone.utc)
    assert collect.parse_deadline("2026-03-01T23:59") == dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.timezone.utc)
    with pytest.raises(collect.CollectError):
        collect.parse_deadline("next friday")


# -- similarity ------------------------------------------------------------------------------------------
def _nb(kind: str, release: Path) -> dict:
    return json.loads(synthetic.notebook_for(kind, SLUG, release))


def test_similarity_sees_through_renaming_and_formatting_but_not_independent_work(release):
    solution = _nb("solution", release)
    disguised = json.loads(json.dumps(solution).replace("scores", "att").replace("weights", "w8s")
                           .replace("    ", "  ").replace("head_dim", "hd"))
    items = [("a", "a", solution), ("b", "b", disguised), ("c", "c", _nb("correct_alternative", release)),
             ("d", "d", _nb("stub", release)), ("e", "e", _nb("bug_causal_upper", release))]
    keep = {"softmax", "causal_mask", "scaled_dot_product_attention", "MultiHeadAttention"}
    starter = json.loads((release / SLUG / NB).read_text())
    pairs = similarity.similar_pairs(similarity.build_docs(items, keep, starter))
    assert [(p.a.label, p.b.label) for p in pairs] == [("a", "b")]
    assert pairs[0].score > 0.95 and "identical" in pairs[0].words or "very high" in pairs[0].words
    assert pairs[0].definition in pairs[0].a.defs
    everything = similarity.similar_pairs(similarity.build_docs(items, keep, starter), threshold=0.0)
    ac = next(p for p in everything if {p.a.label, p.b.label} == {"a", "c"})
    assert ac.score < 0.3
    assert not any("d" in (p.a.label, p.b.label) for p in everything)  # the untouched stub has nothing of its own


# -- recorded results without grading --------------------------------------------------------------------
def fake_result(slug: str, failing: dict[str, str], answer: str, snapshot: Path) -> dict:
    tests = []
    for ex, pts in EXERCISES.items():
        msg = failing.get(ex, "")
        tests.append({"id": f"{ex}::test_{ex}", "exercise": ex, "description": f"{ex} matches the reference",
                      "points": 0 if msg else pts, "max_points": pts, "status": "fail" if msg else "pass",
                      "message": msg, "duration": 0.01})
    score = sum(t["points"] for t in tests)
    return {"schema": "llmkit/result/v1", "assignment": slug, "submission": str(snapshot), "submission_sha256": "x",
            "status": "completed", "score": score, "max_score": 28, "exercises": [], "tests": tests,
            "manual": [{"id": "written_self_attention", "prompt": "?", "max_points": 2, "status": "pending",
                        "answer": answer, "answered": bool(answer.strip())}],
            "warnings": [], "isolation": {}, "limits": {}, "extraction": {}, "environment": {"device": "cpu"},
            "duration_s": 1.0, "student_calls": 1}


def put(gb: Gradebook, user: str, sha: str, when: dt.datetime, failing: dict, answer: str, snapshot: Path,
        late=False, flags=()) -> None:
    t = collect.Target(user, SLUG, f"https://example.edu/{user}", f"w02-{user}", snapshot, None,
                       {"name": user.title()})
    c = collect.Candidate(t, sha, when.replace(tzinfo=None), late, 3600.0 if late else 0.0, snapshot, "", list(flags))
    assert grade_all.record(gb, c, fake_result(SLUG, failing, answer, snapshot), None)


@pytest.fixture()
def book(tmp_path, release) -> Gradebook:
    gb = Gradebook(tmp_path / "gb.db")
    snaps = {}
    for kind in ("solution", "bug_no_scaling", "correct_alternative"):
        folder = tmp_path / "snap" / kind / SLUG
        folder.mkdir(parents=True)
        (folder / NB).write_bytes(synthetic.notebook_for(kind, SLUG, release))
        snaps[kind] = folder.parent
    sdpa = ("scaled_dot_product_attention(q, k, v) differs from the reference: max error 0.31 at [0, 1] "
            "<script>x</script>")
    put(gb, "ann", "a1", T0, {"scaled_dot_product_attention": sdpa}, "Attention mixes values.", snaps["bug_no_scaling"])
    put(gb, "ann", "a2", T0 + dt.timedelta(days=1), {"scaled_dot_product_attention": sdpa.replace("0.31", "0.07")},
        "Attention mixes values.", snaps["bug_no_scaling"])
    put(gb, "ben", "b1", T0, {}, "", snaps["solution"])
    put(gb, "cy", "c1", T0, {"softmax": "softmax overflows"}, "<img src=x onerror=alert(1)> weights", snaps["solution"],
        late=True, flags=[{"kind": "modified_public_tests", "detail": "w02_attention/public_tests.py modified"}])
    put(gb, "dee", "d1", T0, {}, "Queries meet keys.", snaps["correct_alternative"])
    return gb


def test_answers_keep_their_score_across_an_identical_resubmission(book):
    manual.enter_score(book, SLUG, "ann", "written_self_attention", 1.5, "ta", "ok")
    put(book, "ann", "a3", T0 + dt.timedelta(days=2), {}, "Attention mixes values.", Path("/nonexistent"))
    with book.session() as s:
        ann = next(r for r in queries.class_table(s, [SLUG]) if r.student.username == "ann")
        assert ann.submission.commit_sha == "a3" and ann.manual[0].points == 1.5 and ann.total == 29.5
    put(book, "ann", "a4", T0 + dt.timedelta(days=3), {}, "A new answer.", Path("/nonexistent"))
    with book.session() as s:
        ann = next(r for r in queries.class_table(s, [SLUG]) if r.student.username == "ann")
        assert ann.manual[0].status == "pending" and ann.total == 28
    statuses = {(r.student.username, m.status) for r, m in manual.queue(book, SLUG)}
    assert statuses == {("ann", "pending"), ("ben", "unanswered"), ("cy", "pending"), ("dee", "pending")}


def test_interactive_manual_grading(book):
    answers = iter(["2", "clear", "", "q"])
    out = []
    n = manual.interactive(book, SLUG, "ta-zed", read=lambda prompt: next(answers), write=out.append)
    assert n == 1 and out[-1] == "1 answer(s) scored"
    with book.session() as s:
        first = queries.class_table(s, [SLUG])[0]
        assert (first.student.username, first.manual[0].points, first.manual[0].grader) == ("ann", 2.0, "ta-zed")


def test_web_page_lists_escapes_and_saves_scores(book):
    from autograder.gradebook.webgrade import make_server

    server = make_server(book, [SLUG], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        token = page.split("name='token' value='", 1)[1].split("'", 1)[0]
        form = {"assignment": SLUG, "student": "dee", "question": "written_self_attention", "points": "2",
                "grader": "ta-web", "comment": "nice"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/score", urllib.parse.urlencode({**form, "token": "forged"}).encode(),
                                   timeout=10)
        assert refused.value.code == 403
        page = urllib.request.urlopen(base + "/score", urllib.parse.urlencode({**form, "token": token}).encode(),
                                      timeout=10).read().decode()
        assert "saved dee written_self_attention" in page
    finally:
        server.shutdown()
        server.server_close()
    with book.session() as s:
        dee = next(r for r in queries.class_table(s, [SLUG]) if r.student.username == "dee")
        assert (dee.manual[0].points, dee.manual[0].grader, dee.manual[0].source) == (2.0, "ta-web", "web")


def test_report_content(book):
    html = ta_report.build_report(book, [SLUG])
    assert html.count("<rect class=\"bar\"") == 31  # 0..30 points, one bar each
    assert "<script" not in html and "&lt;script&gt;" in html and "<img src=x" not in html
    assert "default-src 'none'" in html
    # grouped: the two sdpa messages differ only in numbers
    assert "max error # at […] &lt;script&gt;x&lt;/script&gt;" in html
    stuck = html.split('id="stuck"', 1)[1].split("</section>", 1)[0]
    assert "ann" in stuck and "scaled_dot_product_attention::test_scaled_dot_product_attention" in stuck
    queue = html.split('id="queue"', 1)[1].split("</section>", 1)[0]
    assert "3 answer(s) waiting" in queue and "1 unanswered" in queue and "ben" in queue.split("Unanswered")[1]
    flags = html.split('id="flags"', 1)[1].split("</section>", 1)[0]
    assert "public_tests.py modified" in flags and "late" in flags
    similar = html.split('id="similar"', 1)[1].split("</section>", 1)[0]
    assert "ben" in similar and "cy" in similar and "identical" in similar  # the same notebook twice
    assert 'id="s-dee"' in html and "attempts: a1 18/28, a2 18/28" in html


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_in_a_headless_browser(book, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    from PIL import Image

    report = ta_report.write_report(book, tmp_path / "report.html", [SLUG])
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            bars = page.locator("svg.histogram rect.bar")
            assert bars.count() == 31
            heights = [float(bars.nth(i).get_attribute("height")) for i in range(bars.count())]
            assert [i for i, h in enumerate(heights) if h > 0] == [18, 23, 28]  # ann; cy; ben and dee
            box = page.locator("svg.histogram").first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100
            page.locator("svg.histogram").first.screenshot(path=str(tmp_path / "chart.png"))
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            page.click("a[href='#s-dee']")
            assert page.locator("#s-dee").is_visible()
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith("file://") for u in requests), requests
    chart = Image.open(tmp_path / "chart.png").convert("RGB")
    colours = chart.getcolors(1 << 20)
    bar_blue = sum(n for n, rgb in colours if abs(rgb[0] - 0x45) < 12 and abs(rgb[1] - 0x7b) < 12
                   and abs(rgb[2] - 0x9d) < 12)
    assert bar_blue > 200, "the histogram bars are not drawn"
    shot = Image.open(tmp_path / "page.png")
    assert shot.size[0] == 1280 and shot.size[1] > 900 and len(shot.convert("L").getcolors(1 << 16)) > 20


def test_canvas_export_counts_students_canvas_cannot_match(book, tmp_path):
    from autograder.gradebook import exports

    summary = exports.write_canvas_csv(book, tmp_path / "canvas.csv")
    assert summary["unmatched"] == ["ann", "ben", "cy", "dee"]
    rows = list(csv.reader(open(tmp_path / "canvas.csv")))
    assert rows[0][:5] == exports.CANVAS_FIXED and rows[1][-1] == "30"
    with book.Session.begin() as s:
        s.query(Submission).count()
