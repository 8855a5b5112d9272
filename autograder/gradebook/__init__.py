"""The class gradebook: grade a whole class, keep every score, show TAs what matters.

Modules, in the order a term uses them:

- ``collect``      find each student's submission: a ``gh classroom clone`` folder or a roster CSV of repository
                   URLs (cloned or fetched), at the last commit before the deadline (and the late one after it)
- ``prewarm``      the import-once fork server: a grading process and a student worker per submission, both forked
                   from processes that imported torch once
- ``grade_all``    grades the collected submissions in parallel and writes each one in a single transaction
- ``models``       the SQLite schema (SQLAlchemy): students, assignments, submissions, test results, answers,
                   manual scores
- ``queries``      what the exports and the report read: the counted submission and the totals
- ``manual``       the written questions: the grading queue, scores and comments (CLI)
- ``webgrade``     the same queue as a local web page
- ``nbgrader_sync`` export the written answers to an nbgrader gradebook and import the manual scores back
- ``exports``      the class CSV (a superset of ``gh classroom assignment-grades``), Canvas' gradebook CSV, JSON
- ``similarity``   pairs of submissions whose code is alike after normalising names and formatting
- ``ta_report``    the single-file HTML report for TAs
- ``synthetic``    a generated class of local git repositories (tests and the benchmark)
- ``benchmark``    grades a synthetic class and reports submissions per minute and peak memory
- ``cli_commands`` ``llmkit grade-all`` and ``llmkit gradebook ...`` (argument parsing)
- ``forkserver_preload`` what the fork server imports once (see ``prewarm``)

The TA/instructor guide, with the architecture, is ``docs/gradebook.md``.
"""

DEFAULT_DB = "gradebook/gradebook.db"
