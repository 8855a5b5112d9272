"""llmkit's grading engine.

Only ``autograder.student`` ships to students (see ``autograder/release.py``); everything else here,
the hidden suites in particular, stays with the course staff.
"""

__version__ = "0.1.0"
