"""Test-suite hooks: collect each sweep item's worst error-to-bound ratio and print them.

Sweep tests attach ``record_property("crosscheck", {...})``; the properties
travel back from pytest-xdist workers with the reports, so the table at the
end covers the whole run.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/*_helpers.py

_worst: dict = defaultdict(lambda: [0, 0.0])


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return
    for key, value in getattr(report, "user_properties", ()):
        if key == "crosscheck" and value["status"] in ("passed", "failed"):
            entry = _worst[(value["backend"], value["dtype"])]
            entry[0] += 1
            entry[1] = max(entry[1], value["worst_ratio"])


def pytest_terminal_summary(terminalreporter):
    if not _worst:
        return
    tr = terminalreporter
    tr.section("crosscheck: worst error / bound per backend and dtype")
    tr.write_line(f"{'backend':<14}{'dtype':<10}{'checked':>8}{'worst ratio':>14}")
    for (backend, dtype), (count, worst) in sorted(_worst.items()):
        tr.write_line(f"{backend:<14}{dtype:<10}{count:>8}{worst:>14.3g}")
