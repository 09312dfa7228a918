"""Every status reaches every report: the summary, the matrix, the verdict line, Markdown."""

from __future__ import annotations

import io

import pytest

from crosscheck import report
from crosscheck.cases import Case
from crosscheck.runner import CaseResult
from crosscheck.statuses import STATUSES

CASE = Case.from_id("conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0")


@pytest.mark.parametrize("status", STATUSES)
def test_each_status_is_counted_in_every_report(status):
    results = [CaseResult(CASE, "torch", status, reason="known bug x: y"),
               CaseResult(CASE, "jax", "passed")]
    out = io.StringIO()
    report.print_summary(results, out)
    assert "2 results judged" in report.verdict_line(results) or status == "unsupported"
    assert sum(sum(r[c] for c in report.AGREEMENT) for r in report.agreement_matrix(results)) == 2
    md = report.markdown_report(results, versions_={})
    assert md.startswith("# crosscheck run") and "## Agreement matrix" in md
    rows = report.summary_rows(results)
    assert sum(r.cases for r in rows) == 2
