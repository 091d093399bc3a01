"""Shared test setup: Hypothesis profiles.

``dev`` (the default) is quick; ``ci`` runs more examples, derandomized (so a CI failure
reproduces), without deadlines (a loaded 2-core CI machine must not make a test flaky).
Choose with ``HYPOTHESIS_PROFILE``; ``.ci/run`` sets ``ci``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
