"""Reports of a ``crosscheck run``: the summary table, failures, JSON, Markdown, JUnit XML, plot.

Everything here works on a list of :class:`crosscheck.runner.CaseResult` and
may be called on a partial list (an interrupted or crashed run): the writers
say how many results they hold and whether the run completed. :class:`ResultLog`
appends each result to a JSON Lines file as soon as it is judged, so a run that
is killed outright still leaves everything it finished on disk. rich (the
``report`` extra) draws the console table and progress bar when installed;
without it the same information is printed as plain text. matplotlib (same
extra) is needed only for :func:`write_plot`.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import os
import platform
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from crosscheck import semantics
from crosscheck.cases import OPS
from crosscheck.ops import DIRECTION_TOKENS
from crosscheck.ops import OPS as _TABLE
from crosscheck.reproduce import result_snippet
from crosscheck.statuses import ABORTED, FAILING, JUDGED, STATUSES

#: GitHub rejects a step summary over 1 MiB; keep well under it.
STEP_SUMMARY_LIMIT = 1024 * 1024 - 64 * 1024
#: Op families in table order: one plot panel each.
FAMILIES = tuple(_TABLE)
#: The JSON report's format: 2 added this field, the statuses after ``unsupported``, the
#: ``complete``/``stopped``/``stop_reason`` fields' meaning for killed runs, and the JSONL file
#: beside it (reports without the field are version 1). 3: passed and unsupported results
#: carry no ``spec`` nor reproducers (their case id reruns them), results name the backends
#: they ``agrees_with``, ``versions.settings`` holds each backend's precision-relevant
#: settings, and ``agreement`` is the op x direction x backend matrix.
SCHEMA_VERSION = 3
#: The summary's columns: ``no answer`` counts every status of :data:`ABORTED`.
COUNTS = ("cases", "passed", "failed", "divergent", "unsupported", "no answer", "mistrusted")


# ---- versions ------------------------------------------------------------------------------------
def package_version(name: str) -> str | None:
    """Installed version of a distribution, read from its metadata (imports nothing)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(backends: dict | None = None) -> dict:
    """python, platform, numpy, refcnn, every registered backend's framework (None where it is
    not installed) and jaxlib, and each backend's own version string and settings."""
    import refcnn

    from crosscheck.backends import REGISTRY

    found = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "refcnn": refcnn.__version__,
    }
    for framework in dict.fromkeys(r.framework for r in REGISTRY.values()):
        found.setdefault(framework, package_version(framework))
    # jax's compiled half (XLA), versioned apart from jax.
    found["jaxlib"] = package_version("jaxlib")
    found["backends"], found["settings"] = {}, {}
    for name, backend in (backends or {}).items():
        try:
            found["backends"][name] = str(backend.version())
        except Exception as exc:  # noqa: BLE001 - a report must not die on a version string
            found["backends"][name] = f"unknown ({exc!r})"
        settings = getattr(backend, "settings", None)
        if callable(settings):
            try:
                found["settings"][name] = {str(k): _plain(v) for k, v in settings().items()}
            except Exception as exc:  # noqa: BLE001 - nor on a backend's settings
                found["settings"][name] = {"error": repr(exc)}
    return found


def _plain(value):
    """A settings value as JSON can hold it."""
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)


# ---- aggregation ---------------------------------------------------------------------------------
@dataclass
class Row:
    """Counts of one (op, direction, backend) group."""

    op: str
    direction: str
    backend: str
    cases: int = 0
    passed: int = 0
    failed: int = 0
    divergent: int = 0
    unsupported: int = 0
    no_answer: int = 0  # crashed, exited, timeout, system-exit, ...
    mistrusted: int = 0  # agreed, on a reference too degenerate to tell right from wrong
    worst_ratio: float = 0.0  # over passed and failed cases (not declared divergences)

    def add(self, result) -> None:
        self.cases += 1
        column = "no_answer" if result.status in ABORTED else str(result.status)
        setattr(self, column, getattr(self, column) + 1)
        # Declared divergences are allowed to be far off: they would hide how close to
        # the bound the agreeing cases come.
        if result.status in ("passed", "failed") and result.discrepancies:
            self.worst_ratio = max(self.worst_ratio, result.worst_ratio)


def summary_rows(results) -> list[Row]:
    """One row per (op, direction, backend), in op order, then direction, then backend."""
    rows: dict[tuple[str, str, str], Row] = {}
    backend_order: dict[str, int] = {}
    for r in results:
        backend_order.setdefault(r.backend, len(backend_order))
        key = (r.case.op, r.case.direction, r.backend)
        if key not in rows:
            rows[key] = Row(*key)
        rows[key].add(r)
    return sorted(rows.values(), key=lambda row: (*_op_order((row.op, row.direction)),
                                                  backend_order[row.backend]))


def backend_summary(results) -> dict[str, dict[str, int]]:
    """``{backend: {"cases": n, "passed": n, ...}}``: every status of :data:`STATUSES`."""
    summary: dict[str, dict[str, int]] = {}
    for r in results:
        counts = summary.setdefault(r.backend, dict.fromkeys(("cases", *STATUSES), 0))
        counts["cases"] += 1
        counts[str(r.status)] += 1
    return summary


#: Above this many (op, direction, backend) rows the console prints the agreement matrix.
MAX_SUMMARY_ROWS = 40

#: Markdown keeps its per-row summary table up to this many rows, and lists this many
#: unsupported reasons.
MAX_MARKDOWN_ROWS = 120
MAX_MARKDOWN_REASONS = 30

#: The agreement matrix's columns, in order.
AGREEMENT = ("agree", "convention", "known bug", "failed", "no answer", "mistrusted",
             "unsupported", "other")


def agreement_class(result) -> str:
    """Which column of the agreement matrix ``result`` counts in."""
    status = str(result.status)
    if status == "passed":
        return "agree"
    if status == "divergent":
        return "known bug" if (result.reason or "").startswith("known bug") else "convention"
    if status == "failed":
        return "failed"
    if status in ABORTED:
        return "no answer"
    if status == "mistrusted":
        return "mistrusted"
    return "unsupported" if status == "unsupported" else "other"


def agreement_matrix(results) -> list[dict]:
    """Op x direction x backend: how many cases agree with the reference, diverge by a
    declared convention, hit a registered bug, fail, gave no answer, or were unsupported;
    and for each disagreement, which other backends agree with that backend."""
    rows: dict[tuple[str, str, str], dict] = {}
    for r in results:
        key = (r.case.op, r.case.direction, r.backend)
        row = rows.setdefault(key, {"op": key[0], "direction": key[1], "backend": key[2],
                                    **dict.fromkeys(AGREEMENT, 0), "disagreements": []})
        column = agreement_class(r)
        row[column] += 1
        if column in ("convention", "known bug", "failed"):
            row["disagreements"].append({
                "case": r.case.id, "status": str(r.status),
                "reason": (r.reason or "").splitlines()[0] if r.reason else None,
                "agrees_with": list(getattr(r, "agrees_with", []))})
    return list(rows.values())


def _cell(row: dict) -> str:
    """One matrix cell: ``120`` agree, ``+3c`` conventions, ``+1b`` known bugs, ``!2`` failed,
    ``?1`` no answer; ``-`` when every case was unsupported."""
    parts = [str(row["agree"])] if row["agree"] else []
    for column, mark in (("convention", "+{}c"), ("known bug", "+{}b"), ("failed", "!{}"),
                         ("no answer", "?{}"), ("mistrusted", "~{}m")):
        if row[column]:
            parts.append(mark.format(row[column]))
    return " ".join(parts) if parts else "-"


def _op_order(key: tuple[str, str]):
    """(op, direction) in table order: ops as the op table lists them, directions likewise."""
    op, direction = key
    directions = list(DIRECTION_TOKENS)
    return (OPS.index(op) if op in OPS else len(OPS),
            directions.index(direction) if direction in directions else len(directions))


def agreement_table_text(results) -> str:
    """The agreement matrix as text: one line per op and direction, one column per backend."""
    matrix = agreement_matrix(results)
    backends = list(dict.fromkeys(r["backend"] for r in matrix))
    cells = {(r["op"], r["direction"], r["backend"]): _cell(r) for r in matrix}
    lines = sorted({(r["op"], r["direction"]) for r in matrix}, key=_op_order)
    header = ["op", "direction", *backends]
    body = [[op, d, *(cells.get((op, d, b), "") for b in backends)] for op, d in lines]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line):
        return "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()

    legend = ("cells: cases agreeing with the reference, +Nc declared conventions, +Nb known "
              "bugs, !N failed, ?N no answer, ~Nm mistrusted, - unsupported throughout")
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, body), legend])


def verdict_line(results, complete: bool = True) -> str:
    """One sentence for the top of a report: the run's verdict and its counts."""
    counts = {c: 0 for c in AGREEMENT}
    for r in results:
        counts[agreement_class(r)] += 1
    judged = sum(counts[c] for c in ("agree", "convention", "known bug", "failed", "no answer",
                                     "mistrusted"))
    bad = counts["failed"] + counts["no answer"]
    head = "FAIL" if bad else ("INCOMPLETE" if not complete else "PASS")
    return (f"{head}: {judged} results judged, {counts['agree']} agree, "
            f"{counts['convention']} declared conventions, {counts['known bug']} known bugs, "
            f"{counts['failed']} failed, {counts['no answer']} without answer, "
            f"{counts['mistrusted']} mistrusted; "
            f"{counts['unsupported']} unsupported.")


def failures(results) -> list:
    """Results that make the run fail: ``failed`` and every status of :data:`ABORTED`."""
    return [r for r in results if r.status in FAILING]


def unjudged_backends(results, names) -> dict[str, dict[str, int]]:
    """Of ``names``, the backends no case of ``results`` was judged on, with their counts."""
    summary = backend_summary(results)
    empty = dict.fromkeys(("cases", *STATUSES), 0)
    return {name: summary.get(name, empty) for name in names
            if not any(summary.get(name, empty)[s] for s in JUDGED)}


def unjudged_note(name: str, counts: dict) -> str:
    """One line: ``backend X judged no case (7 cases: 7 unsupported)``."""
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    return f"backend {name} had no case judged ({counts['cases']} cases" + \
        (f": {parts})" if parts else ")")


def format_ratio(value: float) -> str:
    if value == 0:
        return "0"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}"


# ---- one failure, in words and as a reproducer ---------------------------------------------------
def failure_headline(result) -> str:
    return f"{result.case.id} on {result.backend}"


def failure_details(result) -> list[str]:
    """Lines that explain one failed result on their own (no reproducer)."""
    lines = [] if result.status == "failed" else [f"status: {result.status}"]
    if result.reason:
        lines.append(result.reason.strip().splitlines()[0])
    for d in result.discrepancies:
        if not d.passed:
            lines.append(d.summary())
    lines.append(f"odd one out: {result.odd_one_out or result.backend}")
    return lines


# ---- console -------------------------------------------------------------------------------------
def have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def fancy_output(stream) -> bool:
    """Whether to draw with rich: a terminal, rich installed, and neither NO_COLOR nor CI set."""
    if os.environ.get("NO_COLOR") or os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and have_rich()


def summary_table_text(rows: list[Row]) -> str:
    """The summary as a plain-text table (used without rich, and in tests)."""
    header = ["op", "direction", "backend", *COUNTS, "worst err/bound"]
    body = [[r.op, r.direction, r.backend, *(str(_count(r, c)) for c in COUNTS),
             format_ratio(r.worst_ratio)] for r in rows]
    total = _total(rows)
    body.append(["total", "", "", *(str(total[c]) for c in COUNTS),
                 format_ratio(total["worst_ratio"])])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line):
        return "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *map(fmt, body[:-1]), rule, fmt(body[-1])])


def _count(row: Row, column: str) -> int:
    return getattr(row, column.replace(" ", "_"))


def _total(rows: list[Row]) -> dict:
    total = {c: sum(_count(r, c) for r in rows) for c in COUNTS}
    total["worst_ratio"] = max((r.worst_ratio for r in rows), default=0.0)
    return total


def print_summary(results, stream=None, *, title: str = "crosscheck run",
                  max_failures: int = 20, complete: bool = True, stop_reason: str | None = None,
                  unjudged: dict | None = None) -> None:
    """Print the summary table, then the failures with their reproducers.

    ``unjudged``: backends that had no case judged (:func:`unjudged_backends`), noted last.
    """
    stream = stream or sys.stdout
    rows = summary_rows(results)
    fails = failures(results)
    if len(rows) > MAX_SUMMARY_ROWS:
        # Many ops and backends: the matrix says the same in one line per op and direction.
        print(f"{title}: agreement matrix", file=stream)
        print(agreement_table_text(results), file=stream)
    elif fancy_output(stream):
        _print_rich(rows, stream, title)
    else:
        print(f"{title}: summary", file=stream)
        print(summary_table_text(rows), file=stream)
    print(f"\n{verdict_line(results, complete)}", file=stream)
    if not complete:
        print(f"\nThe run did not complete{f' ({stop_reason})' if stop_reason else ''}: these "
              f"are the {len(results)} results computed before it stopped.", file=stream)
    for name, counts in (unjudged or {}).items():
        print(f"\nnote: {unjudged_note(name, counts)}: nothing was compared.", file=stream)
    if not fails:
        divergent = sum(r.status == "divergent" for r in results)
        note = f" ({divergent} declared divergences)" if divergent else ""
        among = "" if complete else " among them"
        print(f"\nNo failures{among}{note}.", file=stream)
        return
    print(f"\n{len(fails)} failed:", file=stream)
    for r in fails[:max_failures]:
        print(f"\n{str(r.status).upper()} {failure_headline(r)}", file=stream)
        for line in failure_details(r):
            print(f"  {line}", file=stream)
        print("  reproduce:", file=stream)
        for line in result_snippet(r).rstrip().splitlines():
            print(f"    {line}", file=stream)
    if len(fails) > max_failures:
        print(f"\n... and {len(fails) - max_failures} more failures (see --json/--markdown).",
              file=stream)


def _print_rich(rows: list[Row], stream, title: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  caption="worst: largest |error| / allowed error over passed and failed "
                          "cases (at most 1 passes)")
    for col in ("op", "dir", "backend"):
        table.add_column(col, no_wrap=True)
    for col in ("cases", "pass", "fail", "div", "unsup", "no answer", "mistrusted", "worst"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        style = "red" if r.failed or r.no_answer else ("yellow" if r.divergent else None)
        table.add_row(r.op, DIRECTION_TOKENS.get(r.direction, r.direction), r.backend,
                      *(str(_count(r, c)) for c in COUNTS),
                      format_ratio(r.worst_ratio), style=style)
    total = _total(rows)
    table.add_section()
    table.add_row("total", "", "", *(str(total[c]) for c in COUNTS),
                  format_ratio(total["worst_ratio"]), style="bold")
    Console(file=stream).print(table)


# ---- progress ------------------------------------------------------------------------------------
class Progress:
    """A rich progress bar on a terminal; otherwise a plain line every ~10% (or 30 s).

    Use as a context manager; call :meth:`advance` once per finished case.
    """

    def __init__(self, total: int, stream=None, *, label: str = "cases", enabled: bool = True):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        self.done = self.failed = 0
        self._bar = self._task = None
        self._last_line = (0, time.monotonic())
        self._start = time.monotonic()

    def __enter__(self):
        if self.enabled and fancy_output(self.stream):
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[failed]}"),
                                     TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, failed="")
        return self

    def advance(self, n: int = 1, failed: int = 0) -> None:
        self.done += n
        self.failed += failed
        if self._bar is not None:
            self._bar.update(self._task, advance=n,
                             failed=f"[red]{self.failed} failed" if self.failed else "")
            return
        if not self.enabled:
            return
        last_done, last_time = self._last_line
        now = time.monotonic()
        step = max(1, self.total // 10)
        if self.done >= self.total or self.done - last_done >= step or now - last_time > 30:
            self._last_line = (self.done, now)
            pct = 100 * self.done / self.total if self.total else 100.0
            print(f"[{self.done}/{self.total} {self.label}, {pct:3.0f}%, {self.failed} failed, "
                  f"{now - self._start:.1f} s]", file=self.stream, flush=True)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


# ---- JSON ----------------------------------------------------------------------------------------
def json_report(results, *, versions_: dict, meta: dict | None = None) -> dict:
    """``{"schema_version", "versions", "summary", "results", ...}`` with every discrepancy
    field; ``meta`` (the command, ``complete``, ``stopped``, ...) at the top level."""
    return {**_json_head(results, versions_, meta),
            "results": [r.to_dict(slim=True) for r in results]}


def _json_head(results, versions_: dict, meta: dict | None) -> dict:
    """Everything of :func:`json_report` but its results."""
    return {
        "schema_version": SCHEMA_VERSION,
        "versions": versions_,
        **(meta or {}),
        "verdict": verdict_line(results, (meta or {}).get("complete", True)),
        "summary": backend_summary(results),
        "agreement": agreement_matrix(results),
    }


def write_json(path, results, *, versions_: dict, meta: dict | None = None) -> None:
    """:func:`json_report` as compact JSON (the very bytes of ``json.dumps`` of it), written
    result by result, so that a sweep's report never sits in memory whole."""
    def dumps(obj) -> str:
        return json.dumps(obj, separators=(",", ":"), default=str)

    def parts():
        yield dumps(_json_head(results, versions_, meta))[:-1] + ',"results":['
        for n, r in enumerate(results):
            yield ("," if n else "") + dumps(r.to_dict(slim=True))
        yield "]}"

    atomic_write(path, parts())


def jsonl_path(json_path) -> str:
    """Where the JSON Lines log of ``--json PATH`` goes: ``r.json`` -> ``r.jsonl``."""
    path = os.fspath(json_path)
    return (path[:-len(".json")] if path.endswith(".json") else path) + ".jsonl"


class ResultLog:
    """A JSON Lines file that gets each result as soon as it is judged (flushed per case).

    Lines: ``{"type": "run", "schema_version", "versions", ...meta}`` first, then one
    ``{"type": "result", ...}`` per result (the JSON report's fields), and
    ``{"type": "end", "complete", "stopped", ...}`` when the run ends in any way short of
    being killed outright. A killed run's log ends after its last finished case.
    """

    def __init__(self, path, *, versions_: dict, meta: dict | None = None):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")
        self._line({"type": "run", "schema_version": SCHEMA_VERSION, "versions": versions_,
                    **(meta or {})})

    def write(self, results) -> None:
        for r in results:
            self._line({"type": "result", **r.to_dict(slim=True)}, flush=False)
        self._fh.flush()

    def close(self, meta: dict | None = None) -> None:
        if self._fh.closed:
            return
        self._line({"type": "end", **(meta or {})})
        self._fh.close()

    def _line(self, record: dict, flush: bool = True) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        if flush:
            self._fh.flush()


# ---- Markdown ------------------------------------------------------------------------------------
def markdown_report(results, *, versions_: dict, meta: dict | None = None,
                    max_bytes: int | None = None) -> str:
    """The summary, the failures (truncated to ``max_bytes`` with a note) and the registry."""
    meta = meta or {}
    out = io.StringIO()
    w = out.write
    w("# crosscheck run\n\n")
    w(f"**{_md_escape(verdict_line(results, meta.get('complete', True)))}**\n\n")
    if not meta.get("complete", True):
        why = meta.get("stop_reason") or meta.get("stopped") or "stopped early"
        w(f"> **Incomplete run** ({_md_escape(why)}): "
          f"{len(results)} results computed before it stopped.\n\n")
    for name, counts in (meta.get("unjudged") or {}).items():
        w(f"> **{_md_escape(unjudged_note(name, counts))}**: nothing was compared.\n\n")
    backend_versions = ", ".join(f"{k} {v}" for k, v in versions_.get("backends", {}).items())
    w(f"Python {versions_.get('python')} on {versions_.get('platform')}; numpy "
      f"{versions_.get('numpy')}; backends: {backend_versions or 'none'}. "
      f"Tolerance: {meta.get('tolerance', 'bound')}; reference: refcnn float64"
      + (f"; device: {meta['device']}" if meta.get("device", "cpu") != "cpu" else "")
      + (f"; shard {meta['shard']['index']}/{meta['shard']['count']} of "
         f"{meta['shard']['selected_cases']} cases" if meta.get("shard") else "")
      + (f"; merged from {len(meta['merged'])} reports" if meta.get("merged") else "")
      + ".\n\n")
    rows = summary_rows(results)
    if len(rows) <= MAX_MARKDOWN_ROWS:
        w("## Summary\n\n")
        w("| op | direction | backend | cases | passed | failed | divergent | unsupported "
          "| no answer | worst error/bound |\n|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
        for r in rows:
            w(f"| {r.op} | {r.direction} | {r.backend} | {r.cases} | {r.passed} | "
              f"{'**%d**' % r.failed if r.failed else 0} | {r.divergent} | {r.unsupported} | "
              f"{'**%d**' % r.no_answer if r.no_answer else 0} | "
              f"{format_ratio(r.worst_ratio)} |\n")
        total = _total(rows)
        w(f"| **total** | | | {total['cases']} | {total['passed']} | {total['failed']} | "
          f"{total['divergent']} | {total['unsupported']} | {total['no answer']} | "
          f"{format_ratio(total['worst_ratio'])} |\n\n")
        w("No answer: the backend crashed, exited, timed out or raised SystemExit or "
          "KeyboardInterrupt (its status says which).\n\n")
    w(_markdown_agreement(results))
    registry = _markdown_registry(results)
    fails = failures(results)
    w(f"## Failures ({len(fails)})\n\n")
    if not fails:
        w("None: every backend agrees with the reference (declared divergences allowed).\n\n")
    budget = None if max_bytes is None else max_bytes - len(registry.encode()) - 4096
    for i, r in enumerate(fails):
        section = _markdown_failure(r)
        if budget is not None and len(out.getvalue().encode()) + len(section.encode()) > budget:
            w(f"*... {len(fails) - i} more failures left out to keep this report under "
              f"{max_bytes // 1024} KiB; the JSON report (`--json`) lists them all.*\n\n")
            break
        w(section)
    w(registry)
    return out.getvalue()


def _markdown_failure(r) -> str:
    lines = [f"### `{r.case.id}` on {r.backend}" + ("" if r.status == "failed"
                                                     else f" ({r.status})") + "\n"]
    lines += [f"- {_md_escape(line)}" for line in failure_details(r)]
    lines.append("\n<details><summary>reproduce</summary>\n\n```python\n"
                 + result_snippet(r).rstrip() + "\n```\n</details>\n\n")
    return "\n".join(lines)


def _markdown_agreement(results) -> str:
    """The agreement matrix, the divergences by cause, and the unsupported reasons, compactly."""
    matrix = agreement_matrix(results)
    backends = list(dict.fromkeys(r["backend"] for r in matrix))
    cells = {(r["op"], r["direction"], r["backend"]): _cell(r) for r in matrix}
    keys = sorted({(r["op"], r["direction"]) for r in matrix}, key=_op_order)
    out = ["## Agreement matrix\n",
           "Cases agreeing with the reference; +Nc declared conventions, +Nb known bugs, "
           "!N failed, ?N no answer, ~Nm mistrusted, - unsupported throughout.\n",
           "| op | direction | " + " | ".join(backends) + " |",
           "|---|---|" + "--:|" * len(backends)]
    out += [f"| {op} | {d} | " + " | ".join(cells.get((op, d, b), "") for b in backends) + " |"
            for op, d in keys]
    causes: dict[str, dict[str, list]] = {}
    for row in matrix:
        for item in row["disagreements"]:
            if item["status"] != "divergent":
                continue
            cause = (item["reason"] or "").split(":")[0]
            causes.setdefault(cause, {}).setdefault(row["backend"], []).append(item)
    if causes:
        out.append("\n## Divergences by cause\n")
        for cause, by_backend in sorted(causes.items()):
            parts = []
            for backend, items in by_backend.items():
                peers = sorted({p for i in items for p in i["agrees_with"]})
                parts.append(f"{backend} {len(items)} (e.g. `{items[0]['case']}`"
                             + (f"; agrees with {', '.join(peers)}" if peers else "") + ")")
            out.append(f"- **{_md_escape(cause)}**: " + "; ".join(parts))
    reasons: dict[tuple[str, str], int] = {}
    for r in results:
        if str(r.status) == "unsupported":
            key = (r.backend, (r.reason or "").splitlines()[0][:160])
            reasons[key] = reasons.get(key, 0) + 1
    if reasons:
        out.append("\n## Unsupported, by reason\n")
        top = sorted(reasons.items(), key=lambda kv: -kv[1])
        out += [f"- {backend}: {count} x {_md_escape(reason)}"
                for (backend, reason), count in top[:MAX_MARKDOWN_REASONS]]
        if len(top) > MAX_MARKDOWN_REASONS:
            out.append(f"- ... {len(top) - MAX_MARKDOWN_REASONS} more reasons (see the JSON)")
    return "\n".join(out) + "\n\n"


def _markdown_registry(results) -> str:
    """The registry's entries that applied to this run (a divergence named them)."""
    used = {(r.reason or "").split(":")[0].split()[-1] for r in results
            if str(r.status) == "divergent" and r.reason}
    applied = [d for d in semantics.DIFFERENCES if d.key in used]
    out = ["## Known differences that applied (crosscheck.semantics.DIFFERENCES)\n"]
    if not applied:
        out.append(f"None of the {len(semantics.DIFFERENCES)} registered differences applied.")
    for d in applied:
        out.append(f"### {d.title} (`{d.key}`)\n")
        out += [f"- **{family}**: {_md_escape(text)}" for family, text in d.conventions.items()]
        if d.probes:
            out.append("- probed by: " + ", ".join(f"{op} {direction} on `{kind}` inputs"
                                                    for op, direction, kind in d.probes))
        if d.notes:
            out.append(f"- note: {_md_escape(d.notes)}")
        if d.sources:
            out.append("- sources: " + "; ".join(_md_escape(s) for s in d.sources))
        out.append("")
    if applied and len(applied) < len(semantics.DIFFERENCES):
        out.append(f"{len(semantics.DIFFERENCES) - len(applied)} other registered differences "
                   "did not apply to this run.")
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;")


def write_markdown(path, results, *, versions_: dict, meta: dict | None = None) -> None:
    atomic_write(path, markdown_report(results, versions_=versions_, meta=meta))


def append_step_summary(results, *, versions_: dict, meta: dict | None = None) -> str | None:
    """Append the Markdown report to ``$GITHUB_STEP_SUMMARY`` (under 1 MiB); its path or None."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    text = markdown_report(results, versions_=versions_, meta=meta, max_bytes=STEP_SUMMARY_LIMIT)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
    return path


# ---- JUnit XML -----------------------------------------------------------------------------------
def junit_xml(results, *, versions_: dict, meta: dict | None = None) -> str:
    """One testcase per case x backend: failed -> <failure>, no answer (crashed, timeout, ...)
    -> <error type=status>, unsupported -> <skipped>."""
    meta = meta or {}
    by_backend: dict[str, list] = defaultdict(list)
    for r in results:
        by_backend[r.backend].append(r)
    root = ET.Element("testsuites", name="crosscheck", tests=str(len(results)),
                      failures=str(sum(r.status == "failed" for r in results)),
                      errors=str(sum(r.status in ABORTED for r in results)),
                      skipped=str(sum(r.status == "unsupported" for r in results)),
                      time=f"{sum(r.seconds for r in results):.3f}")
    for backend, items in by_backend.items():
        suite = ET.SubElement(root, "testsuite", name=f"crosscheck.{backend}",
                              tests=str(len(items)),
                              errors=str(sum(r.status in ABORTED for r in items)),
                              failures=str(sum(r.status == "failed" for r in items)),
                              skipped=str(sum(r.status == "unsupported" for r in items)),
                              time=f"{sum(r.seconds for r in items):.3f}")
        props = ET.SubElement(suite, "properties")
        for key in ("python", "platform", "numpy", "refcnn"):
            ET.SubElement(props, "property", name=key, value=str(versions_.get(key)))
        ET.SubElement(props, "property", name="backend_version",
                      value=str(versions_.get("backends", {}).get(backend)))
        ET.SubElement(props, "property", name="tolerance", value=str(meta.get("tolerance")))
        ET.SubElement(props, "property", name="complete", value=str(meta.get("complete", True)))
        if meta.get("stop_reason"):
            ET.SubElement(props, "property", name="stop_reason", value=str(meta["stop_reason"]))
        for r in items:
            case = ET.SubElement(suite, "testcase",
                                 classname=f"crosscheck.{backend}.{r.case.op}.{r.case.direction}",
                                 name=r.case.id, time=f"{r.seconds:.4f}")
            if r.status in FAILING:
                details = failure_details(r)
                if r.status == "failed":
                    fail = ET.SubElement(case, "failure", message=_xml_safe(details[0])[:500],
                                         type="discrepancy" if r.discrepancies else "error")
                else:
                    headline = r.reason.strip().splitlines()[0] if r.reason else str(r.status)
                    fail = ET.SubElement(case, "error", message=_xml_safe(headline)[:500],
                                         type=str(r.status))
                text = "\n".join(details) + "\n\n" + result_snippet(r)
                if r.reason and "\n" in r.reason.strip():
                    text += "\n" + r.reason
                fail.text = _xml_safe(text)
            elif r.status == "unsupported":
                ET.SubElement(case, "skipped", message=_xml_safe(r.reason or "unsupported"))
            elif r.status == "divergent":
                cprops = ET.SubElement(case, "properties")
                ET.SubElement(cprops, "property", name="divergent", value=_xml_safe(r.reason))
                out = ET.SubElement(case, "system-out")
                out.text = _xml_safe(f"divergent (allowed): {r.reason}\n"
                                     + "\n".join(d.summary() for d in r.discrepancies
                                                 if not d.passed))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml_safe(text) -> str:
    """Drop characters XML 1.0 cannot hold (tracebacks may carry control characters)."""
    return "".join(ch for ch in str(text) if ch in "\t\n\r" or ord(ch) >= 0x20)


def write_junit(path, results, *, versions_: dict, meta: dict | None = None) -> None:
    atomic_write(path, junit_xml(results, versions_=versions_, meta=meta))


# ---- plot ----------------------------------------------------------------------------------------
class MissingExtra(RuntimeError):
    """An optional dependency a requested output needs is not installed."""


def check_plot_available() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(
            "--plot needs matplotlib, which is not installed: "
            "pip install 'refcnn-crosscheck[report]' (or pip install matplotlib)") from exc


#: Ratios of exactly 0 (bit-identical) are drawn at this floor.
PLOT_FLOOR = 1e-6


def write_plot(path, results, *, title: str = "crosscheck: worst error / bound per case") -> None:
    """A PNG strip plot of each case's worst error-to-bound ratio, per op, by backend."""
    check_plot_available()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = [r for r in results if r.status in ("passed", "failed", "divergent")
              and r.discrepancies]
    backends = list(dict.fromkeys(r.backend for r in results))
    families = [f for f in FAMILIES if any(r.case.family == f for r in judged)] or [FAMILIES[0]]
    fig, axes = plt.subplots(1, len(families), figsize=(4.5 * len(families), 4.5), sharey=True,
                             squeeze=False)
    rng = np.random.default_rng(0)
    colors = {"passed": "tab:blue", "failed": "tab:red", "divergent": "tab:orange"}
    top = 1.0
    for r in judged:
        if np.isfinite(r.worst_ratio):
            top = max(top, r.worst_ratio)
    ceiling = top * 10
    shown: set[str] = set()
    for ax, family in zip(axes[0], families):
        for i, backend in enumerate(backends):
            for status, color in colors.items():
                ys = [r.worst_ratio for r in judged
                      if r.case.family == family and r.backend == backend
                      and r.status == status]
                if not ys:
                    continue
                ys = np.clip(np.nan_to_num(np.array(ys, float), posinf=ceiling), PLOT_FLOOR,
                             ceiling)
                xs = i + rng.uniform(-0.25, 0.25, len(ys))
                ax.scatter(xs, ys, s=8, alpha=0.6, color=color)
                shown.add(status)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_title(family)
        ax.set_xticks(range(len(backends)))
        ax.set_xticklabels(backends, rotation=30, ha="right")
    axes[0][0].set_ylabel(f"worst |error| / bound (0 drawn at {PLOT_FLOOR:g})")
    if shown:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], ls="", marker="o", color=colors[s]) for s in colors
                   if s in shown]
        fig.legend(handles, [s for s in colors if s in shown], loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- files ---------------------------------------------------------------------------------------
def atomic_write(path, text) -> None:
    """Write ``text`` (a string, or strings one after another) to ``path`` through a temporary
    file, so a reader never sees half of it."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            if isinstance(text, str):
                fh.write(text)
            else:
                for part in text:
                    fh.write(part)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)


#: The old private name, which crosscheck/cli.py still imports.
_atomic_write = atomic_write
