"""Hypothesis settings shared by the fuzz tests (tests/test_fuzz_*.py).

CI runs a modest, fixed number of examples per property, derandomized so that a failure in
CI fails the same way on a developer's machine (no example database is kept either).
FUZZ_EXAMPLES=N raises every property to at least N examples for a long run, and FUZZ_RANDOM=1
draws new examples each run instead of CI's fixed ones, e.g.
    FUZZ_EXAMPLES=5000 FUZZ_RANDOM=1 pytest -p no:cacheprovider tests/test_fuzz_email.py
A failure prints the smallest example found; keep it as an @example or a plain test. (The
schemathesis pytest plugin blanks the values in that report: add `-p no:schemathesis` to see
them.)
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def fuzz_settings(examples: int) -> settings:
    """`examples` per property in CI, or FUZZ_EXAMPLES when that is more."""
    wanted = max(examples, int(os.environ.get("FUZZ_EXAMPLES") or 0))
    random = bool(os.environ.get("FUZZ_RANDOM"))
    return settings(
        max_examples=wanted,
        deadline=None,
        derandomize=not random,
        database=None,
        # a random run's failure can be replayed with @reproduce_failure
        print_blob=random,
        # the examples are built on purpose large and slow; API-level tests share their
        # function-scoped fixtures (client, database) across examples on purpose
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )
