"""Hidden test suites, one package per week. Never shipped to students (see ``autograder/release.py``)."""
