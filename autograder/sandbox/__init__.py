"""Running untrusted student code in a separate, limited worker process.

``supervisor`` is the trusted side (lives in the grader's process); ``worker`` is the script that runs
student code; ``codec`` is the data-only wire format both speak. Nothing is ever unpickled.
"""
