"""Exports to the platforms courses grade on: snapshot bundles (Classroom 50), otter-grader zips (Gradescope),
and the helpers the course repository's official-grading workflow uses (roster shards, merging gradebooks).

- ``snapshot``    runs a week's hidden suite once on the instructor's solution and records every call it makes
                  into student code, every reply, and every comparison with the reference, so a bundle can
                  replay the checks without carrying reference or solution code
- ``replay``      the public half: grades a notebook against a recorded snapshot (copied into bundles)
- ``bundle``      writes the public engine subset a bundle needs and proves it leaks nothing
- ``classroom50`` ``llmkit export classroom50``: ``autograders/<slug>/`` plus an ``assignments.json`` entry
- ``otter``       ``llmkit export otter``: an otter-grader autograder zip whose tests read the kit's hidden checks
- ``official``    roster shards and gradebook merging for the course repository's grading workflow
- ``cli``         the ``llmkit export ...`` subcommands
"""
