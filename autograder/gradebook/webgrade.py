"""The manual-grading queue as a local web page: ``llmkit gradebook serve`` (127.0.0.1 only).

``GET /`` lists every written answer of the counted submissions (pending first) with a form for points and a
comment; ``POST /score`` saves one score (``ManualScore``, source ``web``) and goes back to the list. Forms carry
a random token made at start-up, so another web page open in the TA's browser cannot post scores. Answers are
HTML-escaped; the page allows no scripts.
"""

from __future__ import annotations

import html
import secrets
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .manual import ManualError, enter_score, queue
from .models import Gradebook
from .ta_report import CSS

CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


def make_server(gb: Gradebook, slugs: list[str], host: str = "127.0.0.1", port: int = 8765,
                policy: str = "on-time") -> ThreadingHTTPServer:
    token = secrets.token_urlsafe(16)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, code: int, body: str, location: str | None = None):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Content-Length", str(len(data)))
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            url = urllib.parse.urlparse(self.path)
            if url.path != "/":
                return self._send(404, "not found")
            params = urllib.parse.parse_qs(url.query)
            grader = params.get("grader", [""])[0]
            note = params.get("note", [""])[0]
            self._send(200, _page(gb, slugs, policy, token, grader, note))

        def do_POST(self):  # noqa: N802
            if urllib.parse.urlparse(self.path).path != "/score":
                return self._send(404, "not found")
            length = min(int(self.headers.get("Content-Length", "0") or 0), 1 << 20)
            form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
            if not secrets.compare_digest(form.get("token", ""), token):
                return self._send(403, "invalid form token: reload the page")
            grader = form.get("grader", "")
            try:
                enter_score(gb, form.get("assignment", ""), form.get("student", ""), form.get("question", ""),
                            float(form.get("points", "")), grader, form.get("comment", ""), "web", policy)
                note = f"saved {form.get('student')} {form.get('question')}"
            except (ValueError, ManualError) as exc:
                note = f"not saved: {exc}"
            query = urllib.parse.urlencode({"grader": grader, "note": note})
            self._send(303, "", location=f"/?{query}")

    return ThreadingHTTPServer((host, port), Handler)


def _page(gb: Gradebook, slugs: list[str], policy: str, token: str, grader: str, note: str) -> str:
    e = lambda t: html.escape(str(t), quote=True)  # noqa: E731
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Manual grading</title><style>{CSS}</style>"
             "</head><body><header><h1>Manual grading</h1><p>written questions of the counted submissions</p>"
             "</header><main>"]
    if note:
        parts.append(f"<section><p>{e(note)}</p></section>")
    for slug in slugs:
        items = queue(gb, slug, policy=policy)
        items.sort(key=lambda ri: ({"pending": 0, "graded": 1, "unanswered": 2}[ri[1].status], ri[0].student.username))
        pending = sum(1 for _, m in items if m.status == "pending")
        parts.append(f"<section><h2>{e(slug)}: {pending} pending of {len(items)}</h2>")
        for row, m in items:
            score = "" if m.points is None else f"{m.points:g}/{m.max_points}"
            parts.append(
                f"<div class='answer'><h3>{e(row.student.username)} · {e(m.question_id)} "
                f"<span class='tag {'pending' if m.status == 'pending' else 'ok'}'>{e(m.status)}</span> {e(score)}"
                f"{' by ' + e(m.grader) if m.grader else ''}</h3><pre>{e(m.answer.strip() or '(no answer)')}</pre>"
                f"<form method='post' action='/score'><input type='hidden' name='token' value='{e(token)}'>"
                f"<input type='hidden' name='assignment' value='{e(slug)}'>"
                f"<input type='hidden' name='student' value='{e(row.student.username)}'>"
                f"<input type='hidden' name='question' value='{e(m.question_id)}'>"
                f"points <input name='points' type='number' step='0.5' min='0' max='{m.max_points}' "
                f"value='{'' if m.points is None else f'{m.points:g}'}' required> / {m.max_points} "
                f"grader <input name='grader' value='{e(grader or m.grader)}' required> "
                f"comment <input name='comment' size='50' value='{e(m.comment)}'> "
                f"<button>save</button></form></div>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "".join(parts)
