"""The ``crosscheck`` command: ``crosscheck run`` (the sweep), ``crosscheck conform TARGET``,
``crosscheck merge`` (shard reports into one) and ``crosscheck diff OLD NEW`` (what changed).

Exit codes (both commands): 0 everything agrees (declared divergences allowed),
1 a discrepancy (or a non-conformant function); for ``run``: any result failed,
crashed, exited, timed out or raised SystemExit/KeyboardInterrupt, 2 a usage error
(bad option, unknown case id or backend, a target that cannot be imported), 3 an
internal error of crosscheck itself, 4 (``run``) a backend named in ``--backends``
had no case judged (everything unsupported; 1 wins when something also failed),
130 interrupted (Ctrl-C or SIGTERM; reports still hold what was done). A run that
did not finish never exits 0. ``diff``: 0 nothing got worse, 1 something did, 2 usage
error. ``merge``: as ``run``, and 5 when a shard is missing or did not complete.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import time
import traceback

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_NOTHING_JUDGED = 4
EXIT_INCOMPLETE = 5

#: Backends that take ``--device`` (refcnn, the NumPy reference, always runs on the CPU).
DEVICE_BACKENDS = ("torch", "jax", "jax.nchw")

EXAMPLES = """examples:
  crosscheck run --cases smoke --backends refcnn,torch
  crosscheck run --backends mypkg.kernels:MyBackend --ops conv2d --direction forward,backward
  crosscheck run --cases smoke --backends torch,jax --device cuda --json gpu.json
  crosscheck run --shard 2/4 --json shard2.json        # one job of a CI matrix
  crosscheck merge shard*.json -o all.json --markdown all.md --junit all.xml
  crosscheck diff before.json after.json              # after an upgrade: what changed?
  crosscheck conform my_solution.py                   # the notebook API, function by function
  python -m crosscheck --version

exit codes (each command's --help gives its own):
  0    everything agrees (declared divergences allowed); diff: nothing got worse
  1    a discrepancy, a non-conformant function; diff: something got worse
  2    usage error
  3    internal error of crosscheck
  4    run, merge: a backend named in --backends had no case judged
  5    merge: a shard is missing or did not complete
  130  interrupted (Ctrl-C or SIGTERM)"""

RUN_EXAMPLES = """examples:
  crosscheck run --cases smoke                         # smoke | default | full | networks
  crosscheck run --backends torch,jax --dtypes float32 --ops conv3d,max_pool
  crosscheck run --ops conv2d --direction jvp,double_backward
  crosscheck run --backends mypkg.kernels:MyBackend --timeout 30
  crosscheck run --backends torch,jax --device cuda --cases smoke
  crosscheck run --shard 1/4 --json s1.json            # then: crosscheck merge s*.json -o all.json
  crosscheck run --case conv2d-bwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0"""

MERGE_EPILOG = """examples:
  crosscheck merge s1.json s2.json s3.json s4.json -o all.json --markdown all.md --junit all.xml

exit codes:
  0    every merged result passed or is a declared divergence
  1    a merged result failed or gave no answer
  2    usage error (unreadable or overlapping reports, shards of different splits)
  3    internal error of crosscheck
  4    a backend named in --backends had no case judged in any shard
  5    a shard is missing or did not complete (1 wins)"""

DIFF_EPILOG = """examples:
  crosscheck diff main.json branch.json
  crosscheck diff old.json new.json --factor 4 --markdown diff.md

worse, and so exit 1: a result newly failing (or failing where OLD lacked it), an
error grown beyond the factor, a NEW run that did not complete, and (without
--allow-removed) a result removed or newly unsupported.

exit codes:
  0    nothing got worse
  1    something got worse
  2    usage error (a file that is not a crosscheck run report, a newer schema)
  3    internal error of crosscheck"""

RUN_EXIT_CODES = """exit codes:
  0    every result passed or is a declared divergence
  1    a result failed, crashed, exited, timed out, or raised SystemExit or
       KeyboardInterrupt (wins over 4)
  2    usage error (bad option, unknown case id, a backend that does not load)
  3    internal error of crosscheck (the reports hold what was done)
  4    a backend named in --backends had no case judged (every case unsupported);
       the summary gives its counts
  130  stopped by Ctrl-C or SIGTERM (the reports hold what was done, marked
       incomplete)
A run that did not finish never exits 0."""


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


# ---- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from crosscheck.backends import REGISTRY
    from crosscheck.isolation import DEFAULT_TIMEOUT
    from crosscheck.ops import OPS as TABLE
    from crosscheck.sweeps import SIZES
    from crosscheck.tolerance import TOLERANCE_MODES

    parser = argparse.ArgumentParser(
        prog="crosscheck",
        description="Crosscheck convolution and pooling implementations (1-D, 2-D and 3-D) "
                    "against refcnn.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run", help="run the sweep over backends and print a summary",
        description=textwrap.fill(
            "Run a sweep of conv/pool cases over backends, compare each with the refcnn "
            "float64 reference, and report. Every backend gets its own read-only copies of "
            "the inputs; out-of-tree backends (module:Class) run in worker processes, so a "
            "crash, exit or hang is that case's result and the run goes on.", 79),
        epilog=RUN_EXAMPLES + "\n\n" + RUN_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--backends", metavar="NAMES",
                     help="comma-separated backends: built-in names ("
                          + ", ".join(REGISTRY) + ") or module:Class (default: every "
                          "installed built-in)")
    run.add_argument("--cases", choices=SIZES, default="default",
                     help="which sweep (default: %(default)s)")
    run.add_argument("--case", action="append", metavar="ID", default=[],
                     help="run exactly this case id (repeatable); overrides --cases")
    run.add_argument("--dtypes", metavar="LIST",
                     help="comma-separated dtypes to keep (float64,float32,float16,bfloat16)")
    run.add_argument("--ops", metavar="LIST",
                     help="comma-separated ops (conv2d, max_pool3d, ...) or op families ("
                          + ", ".join(TABLE) + ") to keep")
    run.add_argument("--direction", "--directions", metavar="LIST", dest="directions",
                     help="comma-separated directions to keep: forward, backward, jvp, "
                          "double_backward (or their id tokens fwd, bwd, jvp, bwd2)")
    run.add_argument("--shard", type=_shard, metavar="K/N",
                     help="run only the K-th of N disjoint parts of the selected cases, split "
                          "by compile key (a geometry's cases stay together) and balanced by "
                          "case count; the N parts' union is the selection, and 'crosscheck "
                          "merge' joins their --json reports")
    run.add_argument("--device", type=_device, default="cpu", metavar="DEVICE",
                     help="where torch and JAX compute: cpu, cuda or cuda:N (torch's cuda, "
                          "JAX's gpu platform; gpu is the same); recorded in the report's "
                          "settings (default: %(default)s; refcnn always runs on the CPU)")
    run.add_argument("--tolerance", choices=TOLERANCE_MODES, default="bound",
                     help="per-element rounding bound, or torch's/JAX's fixed defaults "
                          "(default: %(default)s)")
    run.add_argument("--jobs", "-j", type=_jobs, default="auto", metavar="N",
                     help="worker processes; cases are chunked by geometry so compiled "
                          "functions are reused (default: auto: one per core for a sweep "
                          f"of {AUTO_JOBS_MIN_KEYS} or more compile keys on the CPU, else 1)")
    run.add_argument("--timeout", type=_non_negative_float, default=DEFAULT_TIMEOUT,
                     metavar="SECONDS",
                     help="per-case time limit of each backend that runs in a worker process "
                          "(module:Class ones, and built-ins with --isolate all): past it the "
                          "worker is stopped, the case is 'timeout' and the run goes on "
                          "(default: %(default)g; 0: no limit)")
    run.add_argument("--isolate", choices=("out-of-tree", "all"), default="out-of-tree",
                     help="which backends run in worker processes: module:Class ones "
                          "(built-ins run in this process, faster) or all (default: "
                          "%(default)s)")
    run.add_argument("--jax-cache", metavar="DIR", default=None,
                     help="JAX's persistent compilation cache, which makes a second run "
                          "several times faster (default: $CROSSCHECK_JAX_CACHE or "
                          "~/.cache/crosscheck/jax; 'none' to disable)")
    run.add_argument("--json", metavar="PATH",
                     help="write every result as JSON, and each result as soon as it is "
                          "judged to PATH's JSON Lines file (r.json -> r.jsonl), so a killed "
                          "run keeps what it finished")
    run.add_argument("--markdown", metavar="PATH",
                     help="write the summary, failures and known differences as Markdown")
    run.add_argument("--junit", metavar="PATH", help="write JUnit XML (one testcase per "
                                                     "case x backend)")
    run.add_argument("--plot", metavar="PATH",
                     help="write a PNG of error-to-bound ratios (needs matplotlib)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    run.add_argument("--max-failures", type=int, default=20, metavar="N",
                     help="failures printed in full on the console (default: %(default)s)")
    run.set_defaults(handler=cmd_run)

    corpus = sub.add_parser(
        "corpus", help="export cases as a portable corpus (.npy + JSON), or judge backends on one",
        description=textwrap.fill(
            "export: write each case's inputs, refcnn's reference outputs and the per-element "
            "bounds as .npy files with one JSON manifest (schema version, case parameters, "
            "file names, dtypes, shapes, the bound formula, each file's sha256), for runners "
            "in any language (docs/corpus.md). check: judge backends on a corpus, after "
            "refusing one whose files do not match their hashes (the file is named). Exit "
            "codes: 0 every result passed or is a declared divergence, 1 a result failed, 2 "
            "usage error or a corpus refused, 3 internal error.", 79))
    corpus_sub = corpus.add_subparsers(dest="corpus_command", metavar="ACTION")
    corpus_sub.required = True
    export = corpus_sub.add_parser("export", help="write a corpus to DIR")
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--cases", choices=SIZES, default="smoke",
                        help="which sweep (default: %(default)s)")
    export.add_argument("--case", action="append", metavar="ID", default=[],
                        help="export exactly this case id (repeatable); overrides --cases")
    export.add_argument("--dtypes", metavar="LIST", help="comma-separated dtypes to keep")
    export.add_argument("--ops", metavar="LIST", help="comma-separated ops or families to keep")
    export.set_defaults(handler=cmd_corpus)
    check = corpus_sub.add_parser("check", help="judge backends on the corpus in DIR")
    check.add_argument("directory", metavar="DIR")
    check.add_argument("--backends", metavar="NAMES",
                       help="comma-separated backends, as for run (default: every installed "
                            "built-in)")
    check.add_argument("--json", metavar="PATH", help="write every result as JSON")
    check.add_argument("--max-failures", type=int, default=20, metavar="N",
                       help="failures printed in full (default: %(default)s)")
    check.set_defaults(handler=cmd_corpus)

    conform = sub.add_parser(
        "conform", help="check an implementation of the notebook's API",
        description="Check an implementation of the notebook API (zero_pad, conv_single_step, "
                    "conv_forward, conv_backward, pool_forward, pool_backward, "
                    "create_mask_from_window, distribute_value) against refcnn.")
    conform.add_argument("target", metavar="TARGET",
                         help="an importable module, a path to a .py file, module:object, or a "
                              "notebook (work.ipynb: only its imports and definitions run)")
    conform.add_argument("--function", action="append", metavar="NAME", default=[],
                         help="check only this function (repeatable)")
    conform.add_argument("--case", action="append", metavar="ID", default=[],
                         help="run only this conformance case id (repeatable)")
    conform.add_argument("--strict", action="store_true",
                         help="also report the tie and NaN conventions the target follows")
    conform.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                         help="per-case time limit; a target that exceeds it is stopped "
                              "(default: %(default)s)")
    conform.add_argument("--in-process", action="store_true",
                         help="trust the target: import and call it in the judging process "
                              "(no timeout, and a target that patches numpy or crosscheck, or "
                              "exits, bends or ends the verdict; for debugging your own code)")
    conform.add_argument("--seed", type=_seed, nargs="?", const="random", default=0,
                         metavar="N",
                         help="draw the inputs from seed N (without N: a fresh random seed, "
                              "printed), so that a target replaying recorded answers is "
                              "caught (default: 0, the same inputs every run)")
    conform.add_argument("--json", metavar="PATH", help="write the verdicts and every case "
                                                        "as JSON")
    conform.add_argument("--all-failures", action="store_true",
                         help="print every failing case, not only the first per function")
    conform.add_argument("--verbose", action="store_true",
                         help="also print each failure's error-to-bound figures (always in "
                              "--json)")
    conform.set_defaults(handler=cmd_conform)

    merge = sub.add_parser(
        "merge", help="join the JSON reports of shards (or of disjoint runs) into one",
        description=textwrap.fill(
            "Join the --json reports of 'crosscheck run --shard K/N' jobs (or of any runs of "
            "disjoint cases) into one report, in the unsharded run's order, and write its "
            "Markdown and JUnit from the merged result. Reports that overlap, ran with other "
            "tolerances or are shards of different splits are refused.", 79),
        epilog=MERGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("reports", nargs="+", metavar="REPORT.json",
                       help="JSON reports of crosscheck run (--json)")
    merge.add_argument("-o", "--output", "--json", dest="json", metavar="PATH", required=True,
                       help="where to write the merged JSON report")
    merge.add_argument("--markdown", metavar="PATH", help="write the merged Markdown report")
    merge.add_argument("--junit", metavar="PATH", help="write the merged JUnit XML")
    merge.add_argument("--max-failures", type=int, default=20, metavar="N",
                       help="failures printed in full on the console (default: %(default)s)")
    merge.set_defaults(handler=cmd_merge)

    diff = sub.add_parser(
        "diff", help="compare two JSON reports: what got worse, what got better",
        description=textwrap.fill(
            "Compare two --json reports of crosscheck run (before and after a framework "
            "upgrade, a kernel change, a crosscheck release): results newly failing and "
            "newly passing, newly unsupported and newly supported, the worst error-to-bound "
            "ratio grown beyond --factor per backend, op and direction (over the results "
            "judged in both), and results added or removed. Results are matched by case id "
            "and backend.", 79),
        epilog=DIFF_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    diff.add_argument("old", metavar="OLD.json")
    diff.add_argument("new", metavar="NEW.json")
    diff.add_argument("--factor", type=_above_one, default=2.0, metavar="F",
                      help="worst error-to-bound growth per backend, op and direction that "
                           "counts as worse (default: %(default)g)")
    diff.add_argument("--floor", type=_non_negative_float, default=0.01, metavar="R",
                      help="OLD's worst ratio is taken as at least R, so that results close to "
                           "exact growing to a rounding error's worth do not count "
                           "(default: %(default)g)")
    diff.add_argument("--allow-removed", action="store_true",
                      help="results removed or newly unsupported are listed but not worse")
    diff.add_argument("--max-items", type=_positive_int, default=20, metavar="N",
                      help="items printed per section (default: %(default)s)")
    diff.add_argument("--json", metavar="PATH", help="write the diff as JSON")
    diff.add_argument("--markdown", metavar="PATH", help="write the diff as Markdown")
    diff.set_defaults(handler=cmd_diff)
    return parser


def version_text() -> str:
    """``crosscheck 0.1.0 (refcnn 0.1.0, numpy 2.x, Python 3.x)``."""
    import platform

    import numpy
    import refcnn

    from crosscheck.report import package_version

    own = package_version("refcnn-crosscheck") or refcnn.__version__
    return (f"crosscheck {own} (refcnn {refcnn.__version__}, numpy {numpy.__version__}, "
            f"Python {platform.python_version()})")


def _shard(text: str) -> tuple[int, int]:
    from crosscheck.ci import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _device(text: str) -> str:
    from crosscheck.backends import parse_device

    try:
        kind, index = parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return kind if index is None else f"{kind}:{index}"


def _above_one(text: str) -> float:
    value = float(text)
    if not value > 1:
        raise argparse.ArgumentTypeError(f"must be above 1, got {text}")
    return value


def _seed(text: str) -> int:
    if text == "random":
        import secrets

        return 1 + secrets.randbelow(2**31 - 1)
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def _jobs(text: str):
    return "auto" if text == "auto" else _positive_int(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def main(argv=None) -> int:
    """Entry point of the ``crosscheck`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"crosscheck {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"crosscheck {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - an internal error gets its own exit code
        print(f"crosscheck {args.command}: internal error:\n{traceback.format_exc()}",
              file=sys.stderr)
        return EXIT_INTERNAL


# ---- crosscheck run ------------------------------------------------------------------------------
def select_cases(args) -> list:
    """The cases named by ``--case``, or the ``--cases`` sweep filtered by dtype, op and
    direction."""
    from crosscheck.cases import DIRECTION_TOKENS, DTYPES, OPS, Case
    from crosscheck.ops import OPS as TABLE
    from crosscheck.sweeps import sweep

    if args.case:
        cases = []
        for case_id in args.case:
            try:
                case = Case.from_id(case_id)
            except ValueError as exc:
                raise UsageError(f"{exc} (ids look like "
                                 "conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g1-float32-s0)")
            try:
                case.check_output()
            except ValueError as exc:
                # No inputs can be made for it: every backend would "fail" it, and exit 1
                # would claim frameworks disagree.
                raise UsageError(f"{exc}; crosscheck runs only cases with an output")
            cases.append(case)
        return cases
    dtypes, ops = _split(args.dtypes), _split(args.ops)
    by_token = {token: name for name, token in DIRECTION_TOKENS.items()}
    directions = [by_token.get(d, d) for d in _split(getattr(args, "directions", None))]
    for value, allowed, what in ((dtypes, DTYPES, "dtype"), (ops, (*OPS, *TABLE), "op"),
                                 (directions, tuple(DIRECTION_TOKENS), "direction")):
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise UsageError(f"unknown {what} {', '.join(unknown)}: choose from "
                             f"{', '.join(allowed)}")
    return [c for c in sweep(args.cases)
            if (not dtypes or c.dtype in dtypes) and (not ops or c.op in ops or c.family in ops)
            and (not directions or c.direction in directions)]


def select_backends(spec: str | None, stream=None, *, timeout: float | None = None,
                    isolate_builtins: bool = False) -> dict:
    """Name -> backend. Named backends must load (else UsageError); by default the installed ones.

    ``module:Class`` backends (and built-ins with ``isolate_builtins``) are started in
    worker processes (:mod:`crosscheck.isolation`) with a per-case ``timeout``.
    """
    from crosscheck.backends import BUILTIN, BackendUnavailable
    from crosscheck.isolation import DEFAULT_TIMEOUT, BackendLoadError, load_backend

    stream = stream or sys.stderr
    explicit = spec is not None
    names = _split(spec) if explicit else list(BUILTIN)
    if explicit and not names:
        raise UsageError("--backends needs at least one name")
    if any(":" in name for name in names) and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # module:Class from the current directory, as python -m
    found = {}
    for name in dict.fromkeys(names):
        try:
            found[name] = load_backend(name, timeout=DEFAULT_TIMEOUT if timeout is None
                                       else timeout, isolate_builtins=isolate_builtins)
        except BackendUnavailable as exc:
            if explicit:
                raise UsageError(str(exc)) from exc
            print(f"note: skipping backend {name}: {exc}", file=stream)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        except BackendLoadError as exc:
            raise UsageError(f"backend {name!r} could not be created: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a module:Class that fails to build
            raise UsageError(f"backend {name!r} could not be created: {exc!r}") from exc
    if not found:
        raise UsageError("no backend is available")
    return found


def backend_labels(backends: dict, stream=None) -> dict[str, str]:
    """What reports call each backend of ``backends`` (keyed by what ``--backends`` named).

    A built-in keeps its registry name; an out-of-tree backend is reported by its own
    ``name``, unless that is empty, a built-in's name, or shared with another backend of the
    run: then by its ``module:Class`` (with a note), so that no two backends are confused.
    The JSON keeps each ``module:Class`` as the result's ``target`` (what reruns it).
    """
    from crosscheck.backends import REGISTRY

    stream = stream or sys.stderr
    wanted = {}
    for spec, backend in backends.items():
        name = spec if spec in REGISTRY else str(getattr(backend, "name", "") or "").strip()
        wanted[spec] = name or spec
    labels = {}
    for spec, name in wanted.items():
        clash = [other for other, n in wanted.items() if other != spec and n == name]
        if spec not in REGISTRY and name != spec and (name in REGISTRY or name in backends
                                                       or clash):
            why = "a built-in backend's name" if name in REGISTRY or name in backends else \
                f"also the name of {', '.join(clash)}"
            print(f"note: backend {spec} is called {name!r}, {why}: reported as {spec}",
                  file=stream)
            name = spec
        labels[spec] = name
    return labels


def relabel(results: list, labels: dict[str, str]) -> list:
    """Give results the names reports use (:func:`backend_labels`); each keeps its target."""
    changed = {spec: label for spec, label in labels.items() if spec != label}
    if not changed:
        return results
    from dataclasses import replace

    for r in results:
        label = changed.get(r.backend)
        if label is not None:
            r.target, r.backend = r.backend, label
            r.discrepancies = [replace(d, backend=label) for d in r.discrepancies]
        r.agrees_with = [labels.get(b, b) for b in r.agrees_with]
        if r.odd_one_out:
            for spec, new in changed.items():
                r.odd_one_out = r.odd_one_out.replace(spec, new)
    return results


def check_device(device: str, names: list[str], stream=None) -> None:
    """Refuse ``--device`` for backends that cannot take it (UsageError); note the others."""
    from crosscheck.backends import REGISTRY
    from crosscheck.semantics import family

    if device == "cpu":
        return
    stream = stream or sys.stderr
    refused = [n for n in names if n in REGISTRY and n not in DEVICE_BACKENDS
               and family(n) != "refcnn"]
    if refused:
        raise UsageError(f"--device {device}: {', '.join(refused)} cannot take a device (only "
                         f"{', '.join(DEVICE_BACKENDS)} do; refcnn runs on the CPU)")
    if not any(n in DEVICE_BACKENDS or n not in REGISTRY for n in names):
        raise UsageError(f"--device {device} needs one of {', '.join(DEVICE_BACKENDS)} (or a "
                         "module:Class, which reads CROSSCHECK_DEVICE) in --backends")
    for name in names:
        if name not in REGISTRY:
            print(f"note: --device {device} is for torch and JAX; {name} chooses its own device "
                  f"(the variable CROSSCHECK_DEVICE={device} is set for it)", file=stream)


def jax_cache_dir(option: str | None) -> str | None:
    """The persistent compilation cache directory for JAX, or None when disabled."""
    value = option or os.environ.get("CROSSCHECK_JAX_CACHE")
    if value is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        value = os.path.join(base, "crosscheck", "jax")
    return None if value.lower() in ("", "none", "off", "0") else value


def configure_jax_cache(directory: str | None) -> None:
    """Point JAX at a persistent compilation cache (only if JAX is already imported).

    A cached executable is the one the compiler would produce, so results do not
    change; compile time, most of a sweep's time on JAX, is spent once per geometry.
    """
    if not directory or "jax" not in sys.modules:
        return
    try:
        import jax

        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation, never a failure
        print(f"note: JAX compilation cache not enabled: {exc}", file=sys.stderr)


def geometry_chunks(cases, jobs: int) -> list[list[tuple[int, object]]]:
    """(index, case) chunks that never split a geometry, about 8 chunks per worker.

    A geometry's cases need not be neighbours in the sweep (its probe kinds may come last):
    they are gathered wherever they are, in order of first appearance.
    """
    by_key: dict[str, list[tuple[int, object]]] = {}
    for i, case in enumerate(cases):
        by_key.setdefault(case.compile_key, []).append((i, case))
    groups = list(by_key.values())
    target = max(1, min(64, len(cases) // (jobs * 8) or 1))
    chunks: list[list[tuple[int, object]]] = []
    for group in groups:
        if chunks and len(chunks[-1]) + len(group) <= target:
            chunks[-1].extend(group)
        else:
            chunks.append(list(group))
    return chunks


#: Compile keys from which ``--jobs auto`` starts a worker per core: each worker spends
#: seconds importing the frameworks, a compile key costs JAX about half a second.
AUTO_JOBS_MIN_KEYS = 200


def auto_jobs(cases, device: str = "cpu") -> int:
    """``--jobs auto``: one worker per core the process may use, for a run of
    :data:`AUTO_JOBS_MIN_KEYS` or more compile keys on the CPU; 1 otherwise (a small run, or
    one accelerator that workers would share)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if device != "cpu" or cores < 2 or \
            len({c.compile_key for c in cases}) < AUTO_JOBS_MIN_KEYS:
        return 1
    return cores


_worker_backends: dict = {}
_worker_mode = "bound"


def _init_worker(names: list[str], mode: str, threads: int | None,
                 jax_cache: str | None = None, timeout: float | None = None,
                 isolate_builtins: bool = False) -> None:
    """Process-pool initializer: the parent handles Ctrl-C; build the backends once."""
    global _worker_backends, _worker_mode
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if threads:
        _limit_threads(threads)
    from crosscheck.isolation import load_backend

    _worker_backends = {name: load_backend(name, timeout=timeout,
                                           isolate_builtins=isolate_builtins)
                        for name in names}
    _worker_mode = mode
    configure_jax_cache(jax_cache)


def _limit_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=false "
                                       f"intra_op_parallelism_threads={threads}")


def _run_chunk(chunk):
    from crosscheck.bounded import compact, recycle
    from crosscheck.runner import run_case

    done = [(i, compact(run_case(case, _worker_backends, _worker_mode))) for i, case in chunk]
    recycle(_worker_backends.values())  # a chunk holds its compile keys whole
    return done


class RunState:
    """What a run has computed so far; reports are written from it whatever happens.

    ``stopped``: None, ``interrupted`` (Ctrl-C), ``terminated`` (SIGTERM) or ``internal
    error``; ``stop_reason`` says it in a sentence, with what was in flight.
    """

    def __init__(self, total: int):
        from crosscheck.bounded import ResultStore

        self.total = total
        # Case index -> its results; the all-passed ones wait on disk (memory stays flat).
        self.by_index = ResultStore()
        self.stopped: str | None = None
        self.stop_reason: str | None = None
        self.in_flight: str | None = None

    def stop(self, stopped: str, why: str) -> None:
        self.stopped = stopped
        during = f" with {self.in_flight} in flight" if self.in_flight else ""
        self.stop_reason = (f"{why}{during}; {len(self.by_index)} of {self.total} cases "
                            "finished")

    def add(self, index: int, results: list) -> None:
        self.by_index[index] = results

    @property
    def results(self):
        """Every result so far in case order: a sequence that reads them back per pass."""
        return self.by_index.results()

    @property
    def complete(self) -> bool:
        return self.stopped is None and len(self.by_index) == self.total


def execute(cases, backends: dict, mode: str, jobs: int, state: RunState, on_case=None,
            jax_cache: str | None = None, timeout: float | None = None,
            isolate_builtins: bool = False, labels: dict | None = None) -> None:
    """Run every case on every backend into ``state`` (serially, or over ``jobs`` processes).

    ``backends`` is keyed by what ``--backends`` named; ``labels`` renames results for the
    reports (:func:`backend_labels`).
    """
    from crosscheck.bounded import Recycler, compact
    from crosscheck.runner import run_case

    labels = labels or {}

    chunks = geometry_chunks(cases, jobs) if jobs > 1 else []
    if jobs <= 1 or len(chunks) <= 1:
        recycler = Recycler(cases, backends.values())  # memory flat however long the sweep
        for i, case in enumerate(cases):
            state.in_flight = f"case {case.id}"
            results = compact(relabel(run_case(case, backends, mode), labels))
            state.add(i, results)
            state.in_flight = None
            recycler.after(i)
            if on_case:
                on_case(results)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: the parent may already hold JAX/torch thread pools.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker,
                               initargs=(list(backends), mode,
                                         max(1, (os.cpu_count() or 1) // jobs), jax_cache,
                                         timeout, isolate_builtins))
    finished = False
    try:
        pending = {pool.submit(_run_chunk, chunk) for chunk in chunks}
        while pending:
            state.in_flight = f"{len(pending)} chunks of cases"
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for i, results in future.result():
                    compact(relabel(results, labels))  # strings shared again after pickling
                    state.add(i, results)
                    if on_case:
                        on_case(results)
        finished = True
        state.in_flight = None
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            # Taken before shutdown(), which forgets them: a worker left running would keep
            # this process from exiting (the pool's manager thread waits for it).
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()  # SIGTERM, default action; their workers' guardians follow
            for process in processes:
                process.join(timeout=10)


def cmd_run(args) -> int:
    from crosscheck import isolation, report

    if args.plot:
        try:
            report.check_plot_available()
        except report.MissingExtra as exc:
            raise UsageError(str(exc)) from exc
    cases = select_cases(args)
    if not cases:
        raise UsageError("no case matches the chosen --cases/--dtypes/--ops/--direction")
    args.shard_meta = None
    if args.shard:
        from crosscheck import ci

        index, count = args.shard
        selected = len(cases)
        cases, positions = ci.shard(cases, index, count)
        if not cases:
            keys = len({c.compile_key for c in select_cases(args)})
            raise UsageError(f"shard {index}/{count} holds no case: the selection has "
                             f"{keys} compile keys, so use at most {keys} shards")
        args.shard_meta = {"index": index, "count": count, "by": "compile key",
                           "selected_cases": selected, "positions": positions}
    from crosscheck.backends import DEVICE_ENV

    if args.jobs == "auto":
        args.jobs = auto_jobs(cases, args.device)
    if args.backends is None and args.device != "cpu":
        # Only the backends that take a device, and the reference's own.
        args.backends = ",".join(("refcnn", *DEVICE_BACKENDS))
    check_device(args.device, _split(args.backends) if args.backends is not None else
                 ["refcnn"])
    isolate_builtins = args.isolate == "all"
    timeout = args.timeout or None
    # Workers (-j, module:Class) inherit it; restored afterwards for an in-process caller.
    device_before = os.environ.get(DEVICE_ENV)
    os.environ[DEVICE_ENV] = args.device
    # SIGTERM (a CI job cancelled, kill PID) from here on stops the run the way Ctrl-C does:
    # workers stopped, reports written, exit 130.
    previous = _sigterm_as_termination()
    try:
        return _run(args, cases, timeout, isolate_builtins, report)
    finally:
        isolation.close_all()  # no worker outlives the run, however it ends
        signal.signal(signal.SIGTERM, previous)
        if device_before is None:
            os.environ.pop(DEVICE_ENV, None)
        else:
            os.environ[DEVICE_ENV] = device_before


def _run(args, cases, timeout, isolate_builtins, report) -> int:
    loaded = select_backends(args.backends, timeout=timeout,
                             isolate_builtins=isolate_builtins)
    labels = backend_labels(loaded)
    # Reports name each backend by its label; --backends' own words stay its target.
    backends = {labels[spec]: be for spec, be in loaded.items()}
    jax_cache = jax_cache_dir(args.jax_cache)
    configure_jax_cache(jax_cache)
    versions = report.versions(backends)
    isolated = [name for name, be in backends.items() if getattr(be, "isolated", False)]
    requested = list(backends) if args.backends is not None else []
    meta = {"command": "crosscheck " + " ".join(args.argv),
            "tolerance": args.tolerance, "cases_requested": len(cases),
            "backends": list(backends), "targets": {labels[s]: s for s in loaded},
            "requested_backends": requested, "device": args.device,
            "isolated_backends": isolated, "timeout": timeout, "jobs": args.jobs}
    if args.shard_meta:
        meta["shard"] = args.shard_meta
    state = RunState(len(cases))
    started = time.perf_counter()
    last_flush = [time.monotonic(), 0.0]  # when the JSON was last written, and how long it took
    log = None
    if args.json:
        meta["jsonl"] = report.jsonl_path(args.json)
        log = report.ResultLog(meta["jsonl"], versions_=versions, meta=meta)

    def outcome() -> tuple[int, dict]:
        results = state.results
        unjudged = report.unjudged_backends(results, backends)
        if state.stopped in ("interrupted", "terminated"):
            code = EXIT_INTERRUPTED
        elif not state.complete:
            code = EXIT_INTERNAL  # never 0 for a run that did not finish
        elif report.failures(results):
            code = EXIT_DISCREPANCY
        elif any(name in unjudged for name in requested):
            code = EXIT_NOTHING_JUDGED
        else:
            code = EXIT_OK
        return code, unjudged

    def write_reports(final: bool) -> None:
        results = state.results
        code, unjudged = outcome()
        meta.update(complete=state.complete, stopped=state.stopped,
                    stop_reason=state.stop_reason, cases_run=len(state.by_index),
                    unjudged=unjudged, exit_code=code if final else None,
                    seconds=round(time.perf_counter() - started, 3))
        if args.json:
            report.write_json(args.json, results, versions_=versions, meta=meta)
        if not final:
            return
        if log is not None:
            log.close({k: meta[k] for k in ("complete", "stopped", "stop_reason", "cases_run",
                                             "exit_code", "seconds")})
        if args.markdown:
            report.write_markdown(args.markdown, results, versions_=versions, meta=meta)
        if args.junit:
            report.write_junit(args.junit, results, versions_=versions, meta=meta)
        if args.plot:
            report.write_plot(args.plot, results)
        report.append_step_summary(results, versions_=versions, meta=meta)

    names = ", ".join(f"{n} {v}" for n, v in versions["backends"].items())
    where = f"; in worker processes: {', '.join(isolated)} (timeout " + \
        (f"{timeout:g} s)" if timeout else "none)") if isolated else ""
    part = "" if not args.shard_meta else \
        (f" (shard {args.shard_meta['index']}/{args.shard_meta['count']} of "
         f"{args.shard_meta['selected_cases']})")
    on = "" if args.device == "cpu" else f", device {args.device}"
    print(f"crosscheck run: {len(cases)} cases{part} x {len(backends)} backends ({names}), "
          f"tolerance {args.tolerance}, jobs {args.jobs}{on}{where}", file=sys.stderr)
    progress = report.Progress(len(cases), enabled=not args.no_progress)

    def on_case(results) -> None:
        if log is not None:
            log.write(results)  # on disk (flushed) as soon as judged
        progress.advance(1, failed=len(report.failures(results)))
        # Keep the JSON on disk current too, so even a killed run leaves a report behind;
        # at most a twentieth of the run goes on it (a sweep's report takes seconds to write).
        if args.json and time.monotonic() - last_flush[0] > max(60, 20 * last_flush[1]):
            began = time.monotonic()
            write_reports(final=False)
            last_flush[:] = [time.monotonic(), time.monotonic() - began]

    try:
        with progress:
            execute(cases, loaded, args.tolerance, args.jobs, state, on_case, jax_cache,
                    timeout, isolate_builtins, labels=labels)
    except _Terminated:
        state.stop("terminated", "terminated by SIGTERM")
    except KeyboardInterrupt:
        state.stop("interrupted", "interrupted (Ctrl-C)")
    except BaseException as exc:
        state.stop("internal error", f"internal error of crosscheck ({exc!r})")
        raise
    finally:
        try:
            write_reports(final=True)
        finally:
            results = state.results
            code, unjudged = outcome()
            report.print_summary(results, sys.stdout, max_failures=args.max_failures,
                                 complete=state.complete, stop_reason=state.stop_reason,
                                 unjudged=unjudged)
            print(f"\n{len(state.by_index)}/{len(cases)} cases in "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    if code == EXIT_NOTHING_JUDGED:
        print(f"crosscheck run: exit {code}: a backend named in --backends had no case "
              "judged", file=sys.stderr)
    return code


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so that it unwinds like Ctrl-C."""


def _sigterm_as_termination():
    """Treat SIGTERM like Ctrl-C (reports written, workers stopped), but say it was SIGTERM."""
    def handler(signum, frame):
        raise _Terminated

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return signal.getsignal(signal.SIGTERM)


def _sigterm_as_interrupt():
    """Treat SIGTERM (a CI job cancelled) like Ctrl-C, so the reports get written."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return signal.getsignal(signal.SIGTERM)


# ---- crosscheck merge and diff ------------------------------------------------------------------
def cmd_merge(args) -> int:
    from crosscheck import ci, report

    try:
        results, versions_, meta = ci.merge_reports([ci.load_report(p) for p in args.reports])
    except ci.ReportError as exc:
        raise UsageError(str(exc)) from exc
    meta["command"] = "crosscheck " + " ".join(args.argv)
    requested = meta["requested_backends"]
    unjudged = report.unjudged_backends(results, meta["backends"])
    if report.failures(results):
        code = EXIT_DISCREPANCY
    elif not meta["complete"]:
        code = EXIT_INCOMPLETE
    elif any(name in unjudged for name in requested):
        code = EXIT_NOTHING_JUDGED
    else:
        code = EXIT_OK
    meta.update(unjudged=unjudged, exit_code=code)
    report.write_json(args.json, results, versions_=versions_, meta=meta)
    if args.markdown:
        report.write_markdown(args.markdown, results, versions_=versions_, meta=meta)
    if args.junit:
        report.write_junit(args.junit, results, versions_=versions_, meta=meta)
    report.append_step_summary(results, versions_=versions_, meta=meta)
    for note in meta.get("merge_notes", []):
        print(f"note: {note}", file=sys.stderr)
    report.print_summary(results, sys.stdout, title="crosscheck merge",
                         max_failures=args.max_failures, complete=meta["complete"],
                         stop_reason=meta["stop_reason"], unjudged=unjudged)
    print(f"\ncrosscheck merge: {len(args.reports)} reports, {len(results)} results -> "
          f"{args.json}", file=sys.stderr)
    return code


def cmd_diff(args) -> int:
    import json

    from crosscheck import ci
    from crosscheck.report import _atomic_write

    try:
        d = ci.diff_reports(ci.load_report(args.old), ci.load_report(args.new),
                            factor=args.factor, floor=args.floor,
                            allow_removed=args.allow_removed)
    except ci.ReportError as exc:
        raise UsageError(str(exc)) from exc
    sys.stdout.write(ci.format_diff(d, args.max_items))
    if args.json:
        _atomic_write(args.json, json.dumps(d.to_dict(), indent=1, default=str) + "\n")
    if args.markdown:
        _atomic_write(args.markdown, ci.markdown_diff(d))
    return EXIT_DISCREPANCY if d.worse else EXIT_OK


# ---- crosscheck conform --------------------------------------------------------------------------
def cmd_conform(args) -> int:
    from crosscheck import conform

    functions = args.function or None
    unknown = sorted(set(args.function) - set(conform.FUNCTIONS))
    if unknown:
        raise UsageError(f"unknown function {', '.join(unknown)}: choose from "
                         f"{', '.join(conform.FUNCTIONS)}")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    # SIGTERM (a cancelled CI job, kill PID) as Ctrl-C: the worker is stopped, and what was
    # judged is still printed and written.
    previous = _sigterm_as_interrupt()
    try:
        outcome = conform.check_target(
            args.target, functions=functions, case_ids=args.case or None, strict=args.strict,
            timeout=args.timeout, in_process=args.in_process, seed=args.seed,
            progress=sys.stderr)
    except conform.TargetError as exc:
        print(f"crosscheck conform: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        conform.write_json(args.json, outcome)
    conform.print_verdicts(outcome, sys.stdout, all_failures=args.all_failures,
                           verbose=args.verbose)
    if outcome.stopped:
        return EXIT_INTERRUPTED
    return EXIT_OK if outcome.conformant else EXIT_DISCREPANCY



# ---- crosscheck corpus ---------------------------------------------------------------------------
def cmd_corpus(args) -> int:
    from crosscheck import corpus

    if args.corpus_command == "export":
        cases = select_cases(args)
        if not cases:
            raise UsageError("no case matches the chosen --cases/--case/--dtypes/--ops")
        manifest = corpus.export(args.directory, cases)
        print(f"crosscheck corpus export: {len(manifest['cases'])} cases "
              f"({len(manifest['skipped'])} without inputs, listed as skipped) -> "
              f"{os.path.join(args.directory, corpus.MANIFEST)}", file=sys.stderr)
        return EXIT_OK
    try:
        corpus.verify(args.directory, corpus.read_manifest(args.directory))
    except corpus.CorpusError as exc:
        raise UsageError(f"corpus refused: {exc}") from exc
    from crosscheck import isolation
    from crosscheck.statuses import FAILING

    backends = select_backends(args.backends)
    try:
        results = corpus.check(args.directory, backends)
    finally:
        isolation.close_all()
    counts: dict = {}
    for r in results:
        counts.setdefault(r.backend, {}).setdefault(str(r.status), 0)
        counts[r.backend][str(r.status)] += 1
    for name, by_status in counts.items():
        print(f"{name}: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())))
    failing = [r for r in results if str(r.status) in FAILING]
    for r in failing[:args.max_failures]:
        print(r.summary())
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"corpus": os.path.abspath(args.directory),
                       "results": [r.to_dict() for r in results]}, f, indent=1, default=str)
    return EXIT_DISCREPANCY if failing else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
