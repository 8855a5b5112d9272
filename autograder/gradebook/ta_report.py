"""The TA report: one static HTML file (no scripts, no network, opens offline) showing who is stuck on what.

Per week: score distribution (an inline SVG histogram), pass rate per test and per exercise, the most common
failure messages grouped (numbers masked, so "max error 0.31" and "max error 0.07" are one group), and who is
behind (missing, below half marks). Across weeks: students stuck on a test (it failed in two or more of their
submissions, or in every one), the manual-grading queue (pending and unanswered written answers), flags
(modified locked cells, modified public tests, workflows or the shipped kit package, notebook links, late
submissions) and pairs of suspiciously similar submissions with the two snippets side by side. Then one section
per student with their feedback: scores, failing tests with the grader's messages, manual scores and comments,
and every attempt.

Every student-controlled string is HTML-escaped, and a Content-Security-Policy forbids scripts and any load.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from . import similarity
from .collect import safe_name
from .models import Gradebook, GradingFailure, Submission
from .queries import StudentWeek, class_table

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;opacity:.85}nav{background:#fff;border-bottom:1px solid #dde1e6;padding:8px 24px;
position:sticky;top:0;z-index:2}nav a{margin-right:14px;color:#1d3557;text-decoration:none;font-weight:600}
main{padding:8px 24px 40px;max-width:1200px}section{background:#fff;border:1px solid #dde1e6;border-radius:6px;
padding:12px 18px;margin:16px 0}h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #eceff3;vertical-align:top}th{background:#f0f2f5;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}.rate{width:180px}.meter{background:#e9ecef;height:10px;
border-radius:5px;overflow:hidden}.meter span{display:block;height:100%;background:#2a9d8f}
.meter span.low{background:#e76f51}.meter span.mid{background:#e9c46a}.tag{display:inline-block;padding:0 6px;
border-radius:9px;font-size:12px;background:#e9ecef;margin-right:4px}.tag.late{background:#ffe5d0}
.tag.flag{background:#fde2e4}.tag.ok{background:#d8f3dc}.tag.pending{background:#fff3bf}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;border:1px solid #eceff3;padding:6px 8px;
margin:4px 0;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;max-height:360px;overflow:auto}
.side{display:grid;grid-template-columns:1fr 1fr;gap:10px}.muted{color:#6c757d}.stats span{margin-right:18px}
details>summary{cursor:pointer;font-weight:600}svg text{font:11px system-ui,sans-serif;fill:#333}
svg .bar{fill:#457b9d}svg .axis{stroke:#999;stroke-width:1}
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def _anchor(username: str) -> str:
    return "s-" + safe_name(username)


def student_link(username: str) -> str:
    return f'<a href="#{_anchor(username)}">{esc(username)}</a>'


def group_message(message: str) -> str:
    """A failure message's group: first line, numbers and quoted values masked."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else "(no message)"
    first = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", first)
    first = re.sub(r"\[[^\]]*\]", "[…]", first)
    return first[:160]


def histogram_svg(values: list[float], top: float, title: str, bins: int | None = None) -> str:
    """An inline SVG histogram of ``values`` over [0, top]."""
    width, height, pad_l, pad_b, pad_t = 520, 180, 34, 30, 14
    top = max(top, 1)
    bins = bins or (int(top) + 1 if top <= 30 else 20)
    edges = [top * i / bins for i in range(bins + 1)] if top > 30 else None
    counts = [0] * bins
    for v in values:
        i = min(int(v / top * bins), bins - 1) if top > 30 else min(int(round(v)), bins - 1)
        counts[max(i, 0)] += 1
    peak = max(counts) or 1
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    bw = plot_w / bins
    parts = [f'<svg class="histogram" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>',
             f'<line class="axis" x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 8}" y2="{pad_t + plot_h}"/>',
             f'<line class="axis" x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + plot_h}"/>',
             f'<text x="{pad_l - 4}" y="{pad_t + 4}" text-anchor="end">{peak}</text>',
             f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end">0</text>']
    for i, c in enumerate(counts):
        h = plot_h * c / peak
        x = pad_l + i * bw + 1
        label = f"{edges[i]:.0f}–{edges[i + 1]:.0f}" if edges else f"{i}"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bw - 2, 1):.1f}" '
                     f'height="{h:.1f}" data-count="{c}"><title>{esc(label)} points: {c} student(s)</title></rect>')
        every = max(1, bins // 10)
        if i % every == 0 or i == bins - 1:
            parts.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{height - 14}" text-anchor="middle">{esc(label)}</text>')
    parts.append(f'<text x="{pad_l + plot_w / 2:.0f}" y="{height - 1}" text-anchor="middle">points</text></svg>')
    return "".join(parts)


def meter(rate: float) -> str:
    cls = "low" if rate < 0.5 else "mid" if rate < 0.8 else ""
    return (f'<div class="meter" title="{rate:.0%}"><span class="{cls}" style="width:{100 * rate:.1f}%"></span>'
            f'</div>')


def _tags(sub: Submission | None) -> str:
    if sub is None:
        return '<span class="tag flag">no submission</span>'
    out = []
    for f in sub.flags or []:
        cls = "late" if f["kind"] == "late" else "flag"
        out.append(f'<span class="tag {cls}" title="{esc(f["detail"])}">{esc(f["kind"].replace("_", " "))}</span>')
    if sub.status == "rejected":
        out.append('<span class="tag flag">notebook unreadable</span>')
    return "".join(out)


def build_report(gb: Gradebook, slugs: list[str] | None = None, policy: str = "on-time",
                 title: str = "llmkit TA report", similarity_threshold: float = similarity.THRESHOLD) -> str:
    with gb.session() as s:
        rows = class_table(s, slugs, policy)
        every = list(s.scalars(select(Submission).options(selectinload(Submission.tests),
                                                          selectinload(Submission.student))))
        failures = list(s.scalars(select(GradingFailure)))
        return _render(rows, every, failures, policy, title, similarity_threshold)


def _render(rows: list[StudentWeek], every: list[Submission], failures, policy: str, title: str,
            threshold: float) -> str:
    weeks: dict[str, list[StudentWeek]] = defaultdict(list)
    for r in rows:
        weeks[r.assignment.slug].append(r)
    students = sorted({r.student.username for r in rows})
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<header><h1>{esc(title)}</h1><p>{len(students)} students · {len(weeks)} week(s) · "
            f"{len(every)} graded submissions · counted: {esc(policy)} · generated {now}</p></header>"]
    nav = ['<a href="#overview">Overview</a>'] + [f'<a href="#w-{esc(w)}">{esc(w)}</a>' for w in weeks]
    nav += ['<a href="#stuck">Who is stuck</a>', '<a href="#queue">Manual queue</a>', '<a href="#flags">Flags</a>',
            '<a href="#similar">Similar code</a>', '<a href="#students">Students</a>']
    body.append("<nav>" + "".join(nav) + "</nav><main>")
    body.append(_overview(weeks, failures))
    for slug, wrows in weeks.items():
        body.append(_week(slug, wrows))
    body.append(_stuck(rows, every))
    body.append(_queue(rows))
    body.append(_flags(rows, every))
    body.append(_similar(weeks, threshold))
    body.append(_students(rows, every))
    body.append("</main>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _overview(weeks: dict[str, list[StudentWeek]], failures) -> str:
    out = ['<section id="overview"><h2>Overview</h2><table><tr><th>week</th><th class="num">submitted</th>'
           '<th class="num">mean</th><th class="num">median</th><th class="num">full marks</th>'
           '<th class="num">late</th><th class="num">manual pending</th></tr>']
    for slug, rows in weeks.items():
        got = [r for r in rows if r.submission]
        totals = [r.total for r in got]
        top = rows[0].total_max if rows else 0
        out.append(f'<tr><td><a href="#w-{esc(slug)}">{esc(slug)}</a></td>'
                   f'<td class="num">{len(got)} / {len(rows)}</td>'
                   f'<td class="num">{statistics.mean(totals) if totals else 0:.1f} / {top}</td>'
                   f'<td class="num">{statistics.median(totals) if totals else 0:g}</td>'
                   f'<td class="num">{sum(1 for r in got if r.total >= r.total_max)}</td>'
                   f'<td class="num">{sum(1 for r in got if r.submission.late)}</td>'
                   f'<td class="num">{sum(r.pending for r in rows)}</td></tr>')
    out.append("</table>")
    if failures:
        out.append(f"<h3>Could not be graded ({len(failures)})</h3><table><tr><th>student</th><th>week</th>"
                   "<th>commit</th><th>error</th></tr>")
        for f in failures[-50:]:
            out.append(f"<tr><td>{student_link(f.username)}</td><td>{esc(f.assignment_slug)}</td>"
                       f"<td>{esc(f.commit_sha[:10])}</td><td>{esc(f.error[:300])}</td></tr>")
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def _week(slug: str, rows: list[StudentWeek]) -> str:
    got = [r for r in rows if r.submission]
    top = rows[0].total_max if rows else 0
    out = [f'<section id="w-{esc(slug)}" class="week"><h2>{esc(slug)}: {esc(rows[0].assignment.title)}</h2>']
    out.append(f'<div class="stats"><span>{len(got)} of {len(rows)} submitted</span>'
               f'<span>total out of {top} (hidden tests {rows[0].auto_max}, written {rows[0].manual_max})</span></div>')
    out.append('<h3>Score distribution</h3>' + histogram_svg([r.total for r in got], top,
                                                             f"{slug}: distribution of total points"))
    tests: dict[str, dict] = {}
    exercises: dict[str, list[bool]] = defaultdict(list)
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for r in got:
        per_ex: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for t in r.submission.tests:
            d = tests.setdefault(t.test_id, {"exercise": t.exercise, "desc": t.description, "pass": 0, "n": 0,
                                             "points": t.max_points})
            d["n"] += 1
            d["pass"] += t.status == "pass"
            per_ex[t.exercise][0] += t.points
            per_ex[t.exercise][1] += t.max_points
            if t.status != "pass":
                groups[(t.exercise, group_message(t.message))].append((r.student.username, t.message))
        for ex, (p, m) in per_ex.items():
            exercises[ex].append(p >= m)
    out.append('<h3>Exercises: share of students with full marks</h3><table class="exercise-rates"><tr>'
               '<th>exercise</th><th class="rate">full marks</th><th class="num">students</th></tr>')
    for ex, oks in exercises.items():
        rate = sum(oks) / len(oks)
        out.append(f'<tr><td>{esc(ex)}</td><td class="rate">{meter(rate)}</td>'
                   f'<td class="num">{sum(oks)} / {len(oks)} ({rate:.0%})</td></tr>')
    out.append('</table><h3>Pass rate per test</h3><table class="test-rates"><tr><th>test</th><th>what it checks</th>'
               '<th class="num">points</th><th class="rate">pass rate</th><th class="num">failing</th></tr>')
    for tid, d in sorted(tests.items(), key=lambda kv: kv[1]["pass"] / kv[1]["n"]):
        rate = d["pass"] / d["n"]
        out.append(f'<tr><td>{esc(tid)}</td><td>{esc(d["desc"])}</td><td class="num">{d["points"]}</td>'
                   f'<td class="rate">{meter(rate)}</td>'
                   f'<td class="num">{d["n"] - d["pass"]} ({1 - rate:.0%})</td></tr>')
    out.append('</table><h3>Most common failure messages</h3><table class="failure-groups"><tr><th>exercise</th>'
               '<th>message (numbers masked)</th><th class="num">students</th><th>who</th></tr>')
    for (ex, msg), items in sorted(groups.items(), key=lambda kv: -len({u for u, _ in kv[1]}))[:25]:
        who = sorted({u for u, _ in items})
        example = items[0][1]
        out.append(f'<tr><td>{esc(ex)}</td><td>{esc(msg)}<details><summary class="muted">example</summary>'
                   f'<pre>{esc(example)}</pre></details></td><td class="num">{len(who)}</td>'
                   f'<td>{", ".join(student_link(u) for u in who[:12])}{" …" if len(who) > 12 else ""}</td></tr>')
    out.append("</table>")
    behind = [r for r in rows if r.submission is None or r.total < r.total_max / 2]
    if behind:
        def shown(r):
            return "none" if r.submission is None else f"{r.total:g}"

        out.append(f'<h3>Behind: no submission or under half marks ({len(behind)})</h3><p>' +
                   ", ".join(f'{student_link(r.student.username)} ({shown(r)})'
                             for r in sorted(behind, key=lambda r: r.total)) + "</p>")
    out.append("</section>")
    return "".join(out)


def _stuck(rows: list[StudentWeek], every: list[Submission]) -> str:
    """Tests that failed in at least two of a student's submissions (they tried again and are still stuck)."""
    by_student: dict[tuple[str, str], list[Submission]] = defaultdict(list)
    for sub in every:
        by_student[(sub.student.username, sub.assignment_slug)].append(sub)
    stuck = []
    for (user, slug), subs in by_student.items():
        fails = Counter(t.test_id for sub in subs for t in sub.tests if t.status != "pass")
        repeated = sorted(tid for tid, n in fails.items() if n >= 2)
        if repeated:
            stuck.append((user, slug, len(subs), repeated))
    exercise_weeks: dict[str, set] = defaultdict(set)
    for r in rows:
        if r.submission and r.total < r.total_max:
            exercise_weeks[r.student.username].add(r.assignment.slug)
    out = ['<section id="stuck"><h2>Who is stuck</h2><h3>Repeated failures: the same test failing in two or more '
           'submissions</h3>']
    if stuck:
        out.append('<table class="stuck"><tr><th>student</th><th>week</th><th class="num">submissions</th>'
                   '<th>tests still failing</th></tr>')
        for user, slug, n, tids in sorted(stuck, key=lambda x: (-len(x[3]), x[0])):
            out.append(f"<tr><td>{student_link(user)}</td><td>{esc(slug)}</td><td class=\"num\">{n}</td>"
                       f"<td>{', '.join(esc(t) for t in tids)}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="muted">No test failed in more than one submission of the same student.</p>')
    several = {u: ws for u, ws in exercise_weeks.items() if len(ws) >= 2}
    if several:
        out.append("<h3>Below full marks in several weeks</h3><p>" + ", ".join(
            f"{student_link(u)} ({', '.join(esc(w) for w in sorted(ws))})" for u, ws in sorted(several.items()))
            + "</p>")
    out.append("</section>")
    return "".join(out)


def _queue(rows: list[StudentWeek]) -> str:
    pending = [(r, m) for r in rows if r.submission for m in r.manual if m.status == "pending"]
    unanswered = [(r, m) for r in rows if r.submission for m in r.manual if m.status == "unanswered"]
    out = [f'<section id="queue"><h2>Manual grading queue</h2><p>{len(pending)} answer(s) waiting for a TA, '
           f'{len(unanswered)} unanswered (0 points unless a TA decides otherwise). Grade with '
           '<code>llmkit gradebook manual</code> or <code>llmkit gradebook serve</code>.</p>']
    if pending:
        out.append('<table class="queue"><tr><th>student</th><th>week</th><th>question</th><th class="num">points</th>'
                   '<th>answer</th></tr>')
        for r, m in pending:
            out.append(f"<tr><td>{student_link(r.student.username)}</td><td>{esc(r.assignment.slug)}</td>"
                       f"<td>{esc(m.question_id)}</td><td class=\"num\">{m.max_points}</td>"
                       f"<td><pre>{esc(m.answer.strip()[:1200])}</pre></td></tr>")
        out.append("</table>")
    if unanswered:
        out.append('<h3>Unanswered written questions</h3><table class="unanswered"><tr><th>student</th><th>week</th>'
                   '<th>question</th></tr>')
        for r, m in unanswered:
            out.append(f"<tr><td>{student_link(r.student.username)}</td><td>{esc(r.assignment.slug)}</td>"
                       f"<td>{esc(m.question_id)}</td></tr>")
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def _flags(rows: list[StudentWeek], every: list[Submission]) -> str:
    out = ['<section id="flags"><h2>Flags</h2><table class="flags"><tr><th>student</th><th>week</th><th>commit</th>'
           '<th>flag</th><th>detail</th></tr>']
    n = 0
    for sub in sorted(every, key=lambda s: (s.assignment_slug, s.student.username, s.id)):
        for f in sub.flags or []:
            n += 1
            cls = "late" if f["kind"] == "late" else "flag"
            out.append(f"<tr><td>{student_link(sub.student.username)}</td><td>{esc(sub.assignment_slug)}</td>"
                       f"<td>{esc(sub.commit_sha[:10])}</td><td><span class=\"tag {cls}\">"
                       f"{esc(f['kind'].replace('_', ' '))}</span></td><td>{esc(f['detail'])}</td></tr>")
    out.append("</table>" if n else "</table><p class=\"muted\">No flags.</p>")
    out.append("</section>")
    return "".join(out)


def _similar(weeks: dict[str, list[StudentWeek]], threshold: float) -> str:
    from ..assignments import get_assignment

    out = [f'<section id="similar"><h2>Suspiciously similar code</h2><p class="muted">Pairs whose graded definitions '
           f'share at least {threshold:.0%} of their code fragments after renaming variables and reformatting, '
           f'ignoring the starter code and lines most of the class writes the same way. A reason to look, not '
           f'proof.</p>']
    found = 0
    for slug, rows in weeks.items():
        try:
            spec = get_assignment(slug)
        except LookupError:
            continue
        keep = {ex.defines for ex in spec.exercises} | {ex.name for ex in spec.exercises}
        items = []
        for r in rows:
            if r.submission is None:
                continue
            nb = _read_notebook(r.submission, slug, spec.notebook)
            if nb is not None:
                items.append((r.student.username, r.student.username, nb))
        starter = _starter(slug, spec.notebook)
        pairs = similarity.similar_pairs(similarity.build_docs(items, keep, starter), threshold)
        for p in pairs[:50]:
            found += 1
            a_src = p.a.defs.get(p.definition, "")
            b_src = p.b.defs.get(p.definition, "")
            out.append(f'<div class="pair"><h3>{esc(slug)}: {student_link(p.a.label)} and {student_link(p.b.label)}'
                       f'</h3><p>{esc(p.words)}</p><div class="side"><div><div class="muted">{esc(p.a.label)}</div>'
                       f'<pre>{esc(a_src)}</pre></div><div><div class="muted">{esc(p.b.label)}</div>'
                       f'<pre>{esc(b_src)}</pre></div></div></div>')
    if not found:
        out.append('<p class="muted">No pair above the threshold.</p>')
    out.append("</section>")
    return "".join(out)


def _read_notebook(sub: Submission, slug: str, notebook: str) -> dict | None:
    folder = Path(sub.result.get("submission", ""))
    for path in (folder / slug / notebook, folder / notebook, folder):
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError, UnicodeDecodeError):
                return None
    return None


def _starter(slug: str, notebook: str) -> dict | None:
    from ..release import KIT_ROOT

    path = KIT_ROOT / "release" / slug / notebook
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def _students(rows: list[StudentWeek], every: list[Submission]) -> str:
    by_user: dict[str, list[StudentWeek]] = defaultdict(list)
    for r in rows:
        by_user[r.student.username].append(r)
    attempts: dict[tuple[str, str], list[Submission]] = defaultdict(list)
    for sub in every:
        attempts[(sub.student.username, sub.assignment_slug)].append(sub)
    out = ['<section id="students"><h2>Students</h2><table class="roster"><tr><th>student</th>' +
           "".join(f"<th class=\"num\">{esc(w)}</th>" for w in dict.fromkeys(r.assignment.slug for r in rows)) +
           "</tr>"]
    for user, rs in sorted(by_user.items()):
        out.append(f"<tr><td>{student_link(user)}</td>" + "".join(
            f'<td class="num">{"—" if r.submission is None else f"{r.total:g} / {r.total_max}"}</td>' for r in rs)
            + "</tr>")
    out.append("</table>")
    for user, rs in sorted(by_user.items()):
        st = rs[0].student
        out.append(f'<div class="student" id="{_anchor(user)}"><h3>{esc(user)}'
                   f'{" · " + esc(st.name) if st.name else ""}</h3>')
        for r in rs:
            sub = r.submission
            if sub is None:
                out.append(f"<p><b>{esc(r.assignment.slug)}</b>: no submission {_tags(None)}</p>")
                continue
            when = sub.committed_at.strftime("%Y-%m-%d %H:%M UTC") if sub.committed_at else ""
            out.append(f"<p><b>{esc(r.assignment.slug)}</b>: {r.total:g} / {r.total_max} "
                       f"(tests {r.auto} / {r.auto_max}, written {r.manual_points:g} / {r.manual_max}) · commit "
                       f"<code>{esc(sub.commit_sha[:10])}</code> {esc(when)} {_tags(sub)}</p>")
            failing = [t for t in sub.tests if t.status != "pass"]
            if failing:
                out.append("<details><summary>What to fix ({} failing test(s))</summary><ul>".format(len(failing)))
                for t in failing:
                    out.append(f"<li><b>{esc(t.exercise)}</b>: {esc(t.description)} ({t.points}/{t.max_points})"
                               f"<pre>{esc(t.message)}</pre></li>")
                out.append("</ul></details>")
            for m in r.manual:
                label = {"graded": "ok", "pending": "pending", "unanswered": "flag"}[m.status]
                score = "" if m.points is None else f" {m.points:g}/{m.max_points}"
                grader = f" by {esc(m.grader)}" if m.grader else ""
                out.append(f'<p>{esc(m.question_id)}: <span class="tag {label}">{m.status}</span>{score}{grader}'
                           f'{": " + esc(m.comment) if m.comment else ""}</p>')
            history = sorted(attempts[(user, r.assignment.slug)], key=lambda s: (s.committed_at or s.graded_at, s.id))
            if len(history) > 1:
                out.append("<p class=\"muted\">attempts: " + ", ".join(
                    f"{esc(h.commit_sha[:7])} {h.auto_score}/{h.auto_max}{' late' if h.late else ''}"
                    for h in history) + "</p>")
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


def write_report(gb: Gradebook, path: Path, slugs: list[str] | None = None, policy: str = "on-time",
                 title: str = "llmkit TA report") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(gb, slugs, policy, title), encoding="utf-8")
    return path
