"""Hypothesis profiles for the fuzz targets: a small one in the normal suite, `fuzz` (10,000 cases a target) for
`make fuzz`, chosen by $VALUEGUARD_FUZZ_PROFILE. No example database: the corpora under tests/corpus are the kept
regressions, and a run writes nothing into the repository."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("suite", max_examples=150, deadline=None, database=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=10_000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = settings.get_profile(os.environ.get("VALUEGUARD_FUZZ_PROFILE", "suite"))
