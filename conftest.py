"""Top-level pytest configuration: deterministic hypothesis profiles.

CI runs derandomized (the ``ci`` profile is loaded when ``CI`` is set), so a
run's verdict never depends on the day's random draws.
"""

import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test extra; without it the property tests skip
    pass
else:
    settings.register_profile(
        "ci", derandomize=True, deadline=None, max_examples=60,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        "dev", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile("ci" if os.environ.get("CI") else
                          os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_cmdline_main(config):
    """Under pytest-xdist, distribute by ``xdist_group`` so cases that share a geometry
    (and so JAX's compiled function) run on one worker. xdist turns ``-n`` into
    ``--dist load`` first; this upgrades that to ``loadgroup``."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "") == "load":
        config.option.dist = "loadgroup"
