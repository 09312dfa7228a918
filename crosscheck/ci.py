"""Runs across CI jobs: shards of a sweep, merging shard reports, and the diff of two runs.

* :func:`shard` splits any list of cases into ``N`` disjoint parts whose union is the list,
  deterministically and by compile key: every case of a geometry (all its directions,
  seeds and probe inputs, which share JAX's compiled function) lands in the same shard. The
  keys, in the order they first appear, go each to the shard holding the fewest cases so far
  (ties to the lowest shard), so the shards are about equal in size; within a shard the
  cases keep the sweep's order. ``crosscheck run --shard K/N`` runs the ``K``-th of ``N``.
* :func:`merge_reports` joins the JSON reports of shards (or of any runs of disjoint cases)
  into one report, in the unsharded run's order, refusing reports that overlap or that were
  run with different tolerances or shard counts (``crosscheck merge``).
* :func:`diff_reports` compares two JSON reports of ``crosscheck run``: results newly
  failing and newly passing, newly unsupported and newly supported, the worst error-to-bound
  ratio grown beyond a factor per backend, op and direction, results added and removed, and
  whether anything got worse (``crosscheck diff``).

Results are matched by case id and backend target (the ``module:Class`` of an out-of-tree
backend, the registry name of a built-in), so a backend reported under its ``name`` matches
the same backend in an older report that named it by its ``module:Class``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields

from crosscheck.statuses import FAILING

__all__ = ["ReportError", "Diff", "shard", "shard_of", "parse_shard", "load_report",
           "result_from_dict", "merge_reports", "diff_reports", "format_diff",
           "markdown_diff"]


class ReportError(ValueError):
    """A file that is not a usable ``crosscheck run`` JSON report, or reports that do not go
    together; the message says which and why."""


# ---- shards --------------------------------------------------------------------------------------
def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: the ``K``-th of ``N`` shards, ``1 <= K <= N``."""
    head, sep, tail = str(text).partition("/")
    try:
        k, n = int(head), int(tail)
    except ValueError:
        raise ValueError(f"a shard is K/N, such as 2/4, got {text!r}") from None
    if not sep or n < 1 or not 1 <= k <= n:
        raise ValueError(f"a shard is K/N with 1 <= K <= N, got {text!r}")
    return k, n


def shard_of(cases, count: int) -> list[int]:
    """For each case, its shard (1 to ``count``): whole compile keys, balanced by case count."""
    if count < 1:
        raise ValueError(f"the shard count must be at least 1, got {count}")
    groups: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault(case.compile_key, []).append(i)
    loads = [0] * count
    owner = [0] * len(cases)
    for members in groups.values():
        target = min(range(count), key=lambda s: (loads[s], s))
        loads[target] += len(members)
        for i in members:
            owner[i] = target + 1
    return owner


def shard(cases, index: int, count: int) -> tuple[list, list[int]]:
    """The cases of shard ``index`` of ``count`` (1-based) and their positions in ``cases``."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: need 1 <= K <= N")
    cases = list(cases)
    owner = shard_of(cases, count)
    positions = [i for i, k in enumerate(owner) if k == index]
    return [cases[i] for i in positions], positions


# ---- reading reports -----------------------------------------------------------------------------
def load_report(path) -> dict:
    """A ``crosscheck run`` JSON report, checked to be one (:class:`ReportError` otherwise)."""
    from crosscheck.report import SCHEMA_VERSION

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ReportError(f"{path}: not a crosscheck run report (no \"results\" list; "
                          "a conform report cannot be compared this way)")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ReportError(f"{path}: schema version {version!r} is newer than this crosscheck "
                          f"reads ({SCHEMA_VERSION}): upgrade crosscheck")
    for i, r in enumerate(data["results"]):
        if not isinstance(r, dict) or not all(k in r for k in ("case", "backend", "status")):
            raise ReportError(f"{path}: result {i} lacks its case, backend or status")
    data["_path"] = path
    return data


def key_of(result: dict) -> tuple[str, str]:
    """How a result is matched across reports: its case id and its backend's target."""
    return result["case"], result.get("target") or result["backend"]


def _ratio(value) -> float | None:
    """A JSON worst_ratio (a number, or ``"inf"``/``"nan"`` as text) as a float."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def result_from_dict(d: dict):
    """A :class:`crosscheck.runner.CaseResult` rebuilt from its JSON form (slim or not).

    A slim result has no case spec: its id parses back (its tags are lost, which only
    labels the case). Discrepancy fields this crosscheck does not know are dropped.
    """
    from crosscheck.cases import Case
    from crosscheck.compare import Discrepancy
    from crosscheck.runner import CaseResult

    spec = d.get("spec")
    case = Case.from_dict(spec) if isinstance(spec, dict) else Case.from_id(d["case"])
    known = {f.name for f in fields(Discrepancy)}
    discs = []
    for x in d.get("discrepancies") or []:
        x = {k: v for k, v in x.items() if k in known}
        for k, v in list(x.items()):
            if isinstance(v, list):
                x[k] = tuple(v)
            elif isinstance(v, str) and v in ("inf", "-inf", "nan") and k not in (
                    "bound", "error", "reproduce", "statistics", "output", "backend",
                    "case_id"):
                x[k] = float(v)
        x.setdefault("case_id", d["case"])
        x.setdefault("backend", d["backend"])
        x.setdefault("output", "?")
        x.setdefault("passed", d["status"] == "passed")
        discs.append(Discrepancy(**x))
    result = CaseResult(case, d["backend"], d["status"], discs, d.get("reason"),
                        odd_one_out=d.get("odd_one_out"), seconds=d.get("seconds") or 0.0,
                        modified_inputs=list(d.get("modified_inputs") or ()),
                        aliased_outputs=list(d.get("aliased_outputs") or ()),
                        agrees_with=list(d.get("agrees_with") or ()))
    if d.get("target") and hasattr(result, "target"):
        result.target = d["target"]
    return result


# ---- merge ---------------------------------------------------------------------------------------
def merge_reports(reports: list[dict]) -> tuple[list, dict, dict]:
    """``(results, versions, meta)`` of the reports joined, in the unsharded run's order.

    Shards (reports with a ``shard`` entry) are put back in the order of the run they were
    cut from; other reports follow one another. The merged run is complete when every input
    is and, for shards, every shard of ``1..N`` is there. :class:`ReportError` when two
    reports hold the same case on the same backend, ran with different tolerances, or are
    shards of different splits.
    """
    if not reports:
        raise ReportError("nothing to merge")
    first = reports[0]
    for field_ in ("tolerance",):
        values = {r.get(field_, "bound") for r in reports}
        if len(values) > 1:
            raise ReportError(f"the reports were run with different {field_}s "
                              f"({', '.join(sorted(map(str, values)))}): not parts of one run")
    shards = [r.get("shard") for r in reports]
    sharded = [s for s in shards if isinstance(s, dict)]
    notes: list[str] = []
    count = None
    if sharded:
        counts = {(s.get("count"), s.get("selected_cases")) for s in sharded}
        if len(counts) > 1:
            raise ReportError("the reports are shards of different splits (shard counts or "
                              "selected cases differ: "
                              + ", ".join(f"{r['_path']}: {s.get('index')}/{s.get('count')} "
                                          f"of {s.get('selected_cases')} cases"
                                          for r, s in zip(reports, shards) if s) + ")")
        count = sharded[0].get("count")
        seen: dict[int, str] = {}
        for r, s in zip(reports, shards):
            if s is None:
                continue
            if s.get("index") in seen:
                raise ReportError(f"{seen[s['index']]} and {r['_path']} are both shard "
                                  f"{s['index']}/{count}")
            seen[s.get("index")] = r["_path"]
        if len(sharded) < len(reports):
            notes.append("some reports are shards and some are not: the latter follow the "
                         "shards")
    owners: dict[tuple[str, str], str] = {}
    ordered: list[tuple[tuple, dict]] = []
    for n, (report, s) in enumerate(zip(reports, shards)):
        positions = list(s.get("positions") or []) if isinstance(s, dict) else []
        for (k, r) in zip(_case_ranks(report["results"], positions, n), report["results"]):
            key = key_of(r)
            if key in owners:
                raise ReportError(f"{owners[key]} and {report['_path']} both hold {key[0]} on "
                                  f"{r['backend']}: the reports overlap")
            owners[key] = report["_path"]
            ordered.append((k, r))
    ordered.sort(key=lambda item: item[0])
    results = [result_from_dict(r) for _, r in ordered]
    versions = dict(first.get("versions") or {})
    for r in reports[1:]:
        other = (r.get("versions") or {}).get("backends")
        if other != versions.get("backends"):
            notes.append(f"{r['_path']} ran other backend versions ({_versions_text(other)}) "
                         f"than {first['_path']} ({_versions_text(versions.get('backends'))}); "
                         f"the merged report gives {first['_path']}'s")
    backends = list(dict.fromkeys(b for r in reports for b in (r.get("backends") or [])))
    backends += [b for b in dict.fromkeys(x.backend for x in results) if b not in backends]
    targets: dict = {}
    for r in reports:
        targets.update(r.get("targets") or {})
    missing = sorted(set(range(1, count + 1)) - {s.get("index") for s in sharded}) \
        if count else []
    unfinished = [r["_path"] for r in reports if not r.get("complete", True)]
    reasons = []
    if missing:
        reasons.append(f"shard{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(f'{k}/{count}' for k in missing)} missing")
    if unfinished:
        reasons.append(f"{', '.join(unfinished)} did not complete")
    meta = {
        "tolerance": first.get("tolerance", "bound"),
        "backends": backends,
        "targets": targets,
        "requested_backends": list(dict.fromkeys(
            b for r in reports for b in (r.get("requested_backends") or []))),
        "isolated_backends": list(dict.fromkeys(b for r in reports
                                                for b in (r.get("isolated_backends") or []))),
        "timeout": first.get("timeout"),
        "jobs": first.get("jobs"),
        "cases_requested": sharded[0].get("selected_cases") if sharded and
        len(sharded) == len(reports) else sum(r.get("cases_requested") or 0 for r in reports),
        "cases_run": sum(r.get("cases_run") or 0 for r in reports),
        "seconds": round(sum(r.get("seconds") or 0 for r in reports), 3),
        "complete": not reasons,
        "stopped": None if not reasons else "incomplete merge",
        "stop_reason": "; ".join(reasons) or None,
        "merged": [{"path": r["_path"], "command": r.get("command"), "shard":
                    None if not isinstance(s, dict) else f"{s.get('index')}/{s.get('count')}",
                    "complete": r.get("complete", True), "cases_run": r.get("cases_run"),
                    "exit_code": r.get("exit_code"), "seconds": r.get("seconds")}
                   for r, s in zip(reports, shards)],
    }
    for key in ("device",):
        if key in first:
            meta[key] = first[key]
    if notes:
        meta["merge_notes"] = notes
    return results, versions, meta


def _case_ranks(results: list[dict], positions: list[int], report_index: int):
    """A sort key per result: the shard's position of its case in the unsharded run (when the
    report says), else the report's own order after every shard's."""
    rank, seen_backends, previous = -1, set(), None
    for i, r in enumerate(results):
        # One case's results are consecutive, one per backend: a new group starts where
        # the case id changes, or where a backend comes round again.
        target = r.get("target") or r["backend"]
        if r["case"] != previous or target in seen_backends:
            rank += 1
            seen_backends = set()
        previous = r["case"]
        seen_backends.add(target)
        if positions and rank < len(positions):
            yield (0, positions[rank], 0, i)
        else:
            yield (1, report_index, rank, i)


def _versions_text(backends) -> str:
    if not isinstance(backends, dict) or not backends:
        return "none recorded"
    return ", ".join(f"{k} {v}" for k, v in backends.items())


# ---- diff ----------------------------------------------------------------------------------------
@dataclass
class Change:
    """One result that changed between the two runs."""

    case: str
    backend: str
    op: str
    direction: str
    old: str  # its status, or "absent"
    new: str
    old_ratio: float | None = None
    new_ratio: float | None = None
    reason: str | None = None

    def text(self) -> str:
        ratios = ""
        if self.old_ratio != self.new_ratio and "absent" not in (self.old, self.new):
            ratios = f" (worst err/bound {_fmt(self.old_ratio)} -> {_fmt(self.new_ratio)})"
        why = f": {self.reason}" if self.reason else ""
        return f"{self.case} on {self.backend}: {self.old} -> {self.new}{ratios}{why}"

    def to_dict(self) -> dict:
        return {k: (_json_float(v) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


@dataclass
class Growth:
    """The worst error-to-bound ratio of one backend, op and direction, over the results
    judged in both runs (passed or failed in each)."""

    backend: str
    op: str
    direction: str
    old: float
    new: float
    factor: float
    case: str  # where the new worst is
    results: int

    def text(self) -> str:
        times = "inf" if math.isinf(self.factor) else f"{self.factor:.3g}"
        return (f"{self.backend} {self.op} {self.direction}: worst err/bound {_fmt(self.old)} -> "
                f"{_fmt(self.new)} (x{times} over {self.results} results; worst at "
                f"{self.case})")

    def to_dict(self) -> dict:
        return {k: (_json_float(v) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


@dataclass
class Diff:
    """What changed from OLD to NEW; :attr:`worse` says whether anything got worse."""

    old_path: str
    new_path: str
    factor: float
    floor: float
    newly_failing: list[Change] = field(default_factory=list)
    newly_passing: list[Change] = field(default_factory=list)
    newly_unsupported: list[Change] = field(default_factory=list)
    newly_supported: list[Change] = field(default_factory=list)
    other_changes: list[Change] = field(default_factory=list)
    error_growth: list[Growth] = field(default_factory=list)
    error_shrink: list[Growth] = field(default_factory=list)
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    allow_removed: bool = False
    unchanged: int = 0

    @property
    def worse_reasons(self) -> list[str]:
        """Each way NEW is worse than OLD, in a phrase (none: nothing got worse)."""
        out = []
        if self.newly_failing:
            out.append(f"{len(self.newly_failing)} newly failing")
        if self.error_growth:
            out.append(f"error grew beyond x{self.factor:g} in "
                       f"{_n(len(self.error_growth), 'backend/op/direction group')}")
        if not self.allow_removed:
            if self.newly_unsupported:
                out.append(f"{len(self.newly_unsupported)} newly unsupported")
            if self.removed:
                out.append(f"{_n(len(self.removed), 'result')} removed")
        if any(line.startswith("NEW") for line in self.incomplete):
            out.append("the new run did not complete")
        return out

    @property
    def worse(self) -> bool:
        return bool(self.worse_reasons)

    def headline(self) -> str:
        better = []
        if self.newly_passing:
            better.append(f"{len(self.newly_passing)} newly passing")
        if self.newly_supported:
            better.append(f"{len(self.newly_supported)} newly supported")
        if self.error_shrink:
            better.append(f"error shrank beyond x{self.factor:g} in "
                          f"{_n(len(self.error_shrink), 'backend/op/direction group')}")
        info = []
        if self.added:
            info.append(f"{_n(len(self.added), 'result')} added")
        if self.removed and self.allow_removed:
            info.append(f"{_n(len(self.removed), 'result')} removed (allowed)")
        if self.newly_unsupported and self.allow_removed:
            info.append(f"{len(self.newly_unsupported)} newly unsupported (allowed)")
        if self.other_changes:
            info.append(f"{_n(len(self.other_changes), 'other status change')}")
        if self.worse:
            head = "WORSE: " + ", ".join(self.worse_reasons)
            tail = better + info
        elif better:
            head, tail = "BETTER: " + ", ".join(better), info
        elif info:
            head, tail = "CHANGED, nothing worse: " + ", ".join(info), []
        else:
            head, tail = "SAME: nothing changed", []
        return head + (f"; also {', '.join(tail)}" if tail else "") + \
            f" ({_n(self.unchanged, 'result')} unchanged)."

    def to_dict(self) -> dict:
        return {
            "old": self.old_path, "new": self.new_path, "worse": self.worse,
            "worse_reasons": self.worse_reasons, "headline": self.headline(),
            "factor": self.factor, "floor": self.floor, "allow_removed": self.allow_removed,
            "versions": self.versions, "incomplete": self.incomplete,
            "unchanged": self.unchanged,
            **{name: [c.to_dict() for c in getattr(self, name)] for name in SECTIONS},
        }


#: The diff's sections in report order: (attribute, title).
SECTIONS = {
    "newly_failing": "Newly failing",
    "error_growth": "Error grown beyond the factor",
    "newly_unsupported": "Newly unsupported (was judged)",
    "removed": "Removed (in OLD only)",
    "newly_passing": "Newly passing",
    "newly_supported": "Newly supported",
    "error_shrink": "Error shrunk beyond the factor",
    "other_changes": "Other status changes",
    "added": "Added (in NEW only)",
}


def diff_reports(old: dict, new: dict, *, factor: float = 2.0, floor: float = 0.01,
                 allow_removed: bool = False) -> Diff:
    """What changed from the ``old`` report to the ``new`` one (:func:`load_report`'s dicts).

    A result is *newly failing* when it fails (failed, or no answer) in NEW and did not in
    OLD, or was not there; *newly passing* when it failed in OLD and passes or declares a
    divergence in NEW. Per backend, op and direction, the worst error-to-bound ratio over
    the results judged in both runs has *grown* when NEW's exceeds ``factor`` times OLD's
    (OLD's taken as at least ``floor``, so that bit-exact results growing to a rounding
    error's worth do not count). Worse: newly failing, grown errors, a NEW run that did not
    complete, and (unless ``allow_removed``) results removed or newly unsupported.
    """
    if not factor > 1:
        raise ValueError(f"the factor must be above 1, got {factor}")
    d = Diff(old.get("_path", "OLD"), new.get("_path", "NEW"), factor, floor,
             allow_removed=allow_removed)
    for which, report in (("OLD", old), ("NEW", new)):
        if not report.get("complete", True):
            d.incomplete.append(f"{which} ({report.get('_path')}) did not complete: "
                                f"{report.get('stop_reason') or report.get('stopped')}")
    d.versions = _version_changes(old.get("versions") or {}, new.get("versions") or {})
    olds = {key_of(r): r for r in old["results"]}
    news = {key_of(r): r for r in new["results"]}
    groups: dict[tuple[str, str, str], list] = {}
    for key, n in news.items():
        o = olds.get(key)
        change = _change(o, n)
        if o is None:
            d.added.append(change)
            if n["status"] in FAILING:
                d.newly_failing.append(change)
            continue
        os_, ns = o["status"], n["status"]
        if ns in FAILING and os_ not in FAILING:
            d.newly_failing.append(change)
        elif os_ in FAILING and ns not in FAILING and ns != "unsupported":
            d.newly_passing.append(change)
        elif ns == "unsupported" and os_ != "unsupported":
            d.newly_unsupported.append(change)
        elif os_ == "unsupported" and ns != "unsupported":
            d.newly_supported.append(change)
        elif os_ != ns:
            d.other_changes.append(change)
        else:
            d.unchanged += 1
        if os_ in ("passed", "failed") and ns in ("passed", "failed"):
            ro, rn = _ratio(o.get("worst_ratio")), _ratio(n.get("worst_ratio"))
            if ro is not None and rn is not None and not (math.isnan(ro) or math.isnan(rn)):
                g = groups.setdefault((n["backend"], n.get("op", "?"), n.get("direction", "?")),
                                      [0.0, 0.0, None, 0])
                g[0] = max(g[0], ro)
                if g[2] is None or rn > g[1]:
                    g[1], g[2] = rn, n["case"]
                g[3] += 1
    for key, o in olds.items():
        if key not in news:
            d.removed.append(_change(o, None))
    for (backend, op, direction), (ro, rn, case, count) in groups.items():
        base = max(ro, floor)
        if rn > factor * base:
            d.error_growth.append(Growth(backend, op, direction, ro, rn,
                                         rn / base if base else math.inf, case, count))
        elif rn >= floor and ro > factor * max(rn, floor):
            d.error_shrink.append(Growth(backend, op, direction, ro, rn,
                                         ro / max(rn, floor), case, count))
    d.error_growth.sort(key=lambda g: -g.factor)
    d.error_shrink.sort(key=lambda g: -g.factor)
    return d


def _change(o: dict | None, n: dict | None) -> Change:
    r = n if n is not None else o
    reason = n.get("reason") if n is not None and n["status"] != "passed" else None
    return Change(r["case"], r["backend"], r.get("op", "?"), r.get("direction", "?"),
                  "absent" if o is None else o["status"], "absent" if n is None else n["status"],
                  None if o is None else _ratio(o.get("worst_ratio")),
                  None if n is None else _ratio(n.get("worst_ratio")),
                  reason.strip().splitlines()[0][:200] if reason and reason.strip() else None)


def _version_changes(old: dict, new: dict) -> list[str]:
    out = []
    for key in ("python", "numpy", "refcnn", "torch", "jax", "jaxlib"):
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)} -> {new.get(key)}")
    ob, nb = old.get("backends") or {}, new.get("backends") or {}
    for name in dict.fromkeys([*ob, *nb]):
        if ob.get(name) != nb.get(name):
            out.append(f"backend {name} {ob.get(name, 'absent')} -> {nb.get(name, 'absent')}")
    os_, ns = old.get("settings") or {}, new.get("settings") or {}
    for name in dict.fromkeys([*os_, *ns]):
        a, b = os_.get(name) or {}, ns.get(name) or {}
        for k in dict.fromkeys([*a, *b]):
            if a.get(k) != b.get(k):
                out.append(f"{name} setting {k}: {a.get(k, 'absent')} -> {b.get(k, 'absent')}")
    return out


def format_diff(d: Diff, max_items: int = 20) -> str:
    """The diff as plain text: the headline, then each non-empty section."""
    lines = [f"crosscheck diff {d.old_path} {d.new_path}", d.headline()]
    for line in d.incomplete:
        lines.append(f"note: {line}")
    if d.versions:
        lines.append("versions: " + "; ".join(d.versions))
    for name, title in SECTIONS.items():
        items = getattr(d, name)
        if not items:
            continue
        extra = f" (factor {d.factor:g}, floor {d.floor:g})" if "error" in name else ""
        lines.append(f"\n{title}{extra}: {len(items)}")
        if name in ("added", "removed"):
            lines.append("  " + _by_backend(items))
        for item in items[:max_items]:
            lines.append(f"  {item.text()}")
        if len(items) > max_items:
            lines.append(f"  ... and {len(items) - max_items} more (--max-items, or --json)")
    return "\n".join(lines) + "\n"


def markdown_diff(d: Diff, max_items: int = 50) -> str:
    """The diff as Markdown (for a pull request comment or a step summary)."""
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("<", "&lt;")

    out = [f"# crosscheck diff\n", f"**{esc(d.headline())}**\n",
           f"`{esc(d.old_path)}` -> `{esc(d.new_path)}`\n"]
    out += [f"> {esc(line)}\n" for line in d.incomplete]
    if d.versions:
        out.append("Versions: " + "; ".join(esc(v) for v in d.versions) + "\n")
    for name, title in SECTIONS.items():
        items = getattr(d, name)
        if not items:
            continue
        out.append(f"## {title} ({len(items)})\n")
        if name in ("added", "removed"):
            out.append(esc(_by_backend(items)) + "\n")
        out += [f"- {esc(item.text())}" for item in items[:max_items]]
        if len(items) > max_items:
            out.append(f"- ... and {len(items) - max_items} more (see the JSON)")
        out.append("")
    return "\n".join(out) + "\n"


def _by_backend(items: list[Change]) -> str:
    counts: dict[str, int] = {}
    for c in items:
        counts[c.backend] = counts.get(c.backend, 0) + 1
    cases = len({c.case for c in items})
    return f"{_n(cases, 'case')}; by backend: " + ", ".join(f"{b} {n}" for b, n in counts.items())


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return "0" if value == 0 else f"{value:.3g}"


def _json_float(value: float):
    return value if math.isfinite(value) else str(value)
