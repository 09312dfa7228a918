"""A portable corpus: each case's inputs, reference outputs and per-element bounds as ``.npy``
files, with one JSON manifest, for runners in any language (``docs/corpus.md``).

:func:`export` writes a directory::

    DIR/manifest.json
    DIR/cases/<case id>/x.npy, w.npy, ...        inputs (the roles the case reads)
    DIR/cases/<case id>/expected.y.npy, ...      refcnn's float64 reference outputs
    DIR/cases/<case id>/allowed.y.npy, ...       the allowed absolute error per element

The manifest holds the schema version, every case's id and parameters in plain fields,
each file's name, stored dtype, shape and sha256, and the bound's formula. Every array
is stored little-endian and C-ordered, float64 (the values are exact in the case's
dtype) or int64 (max-pool indices), so a runner needs only a ``.npy`` header parser.

:func:`load` refuses a corpus whose files do not match their hashes (or are missing),
naming the file (:class:`CorpusError`); :func:`check` judges backends on a corpus with
its frozen arrays, the way ``crosscheck run`` judges them on freshly computed ones
(:func:`crosscheck.runner.judge`), the statistics over each output and the
``mistrusted`` verdict included. The per-element bounds are the plain rounding bound
(a backend's declared accumulator does not tighten them here).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from crosscheck import geometry, tolerance
from crosscheck.cases import ROLES, Case, Inputs

SCHEMA = "crosscheck-corpus"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

BOUND_FORMULA = {
    "formula": "allowed = c * (u * (K * A + |ref|) + (K + 1) * eta)",
    "c": tolerance.BOUND_FACTOR,
    "u": {k: v for k, v in tolerance.UNIT_ROUNDOFF.items()},
    "eta": {k: v for k, v in tolerance.UNDERFLOW.items()},
    "terms": "K: the number of terms summed for the output (per output file, 'K')",
    "magnitude": "A: the same computation on absolute values, in float64",
    "exact_tier": "cases of tier 'exact' (integer inputs under the safe-accumulation rule) and "
                  "max-pool indices have allowed = 0: they must match bit for bit",
    "stored": "allowed.<output>.npy holds the formula's value per element; a runner need not "
              "recompute it",
}

COMPARISON = {
    "element": "pass iff |actual - expected| <= allowed, element by element, actual computed "
               "in the case's dtype and read as float64; NaN matches NaN, an infinity matches "
               "the same infinity, any other non-finite difference fails",
    "statistics": "optional, as crosscheck does: over the elements with allowed > 0 and both "
                  "values finite (n of them, n >= 100), e = (actual - expected) / allowed must "
                  "have |mean(e)| <= max(0.1, sqrt(2 ln(2e6) / n)) and sqrt(mean(e^2)) <= "
                  "sqrt(1/3 + sqrt(ln(1e6) / (2n)))",
    "mistrusted": "a case whose 'mistrusted' field is a reason has a degenerate reference: "
                  "agreeing with it is not a pass",
}

LAYOUT = {
    "data": "x, dy, y, dx and their tangents/cotangents: (N, *spatial, C), channels last",
    "conv_weight": "conv w: (*kernel, C_in / groups, C_out)",
    "conv_transpose_weight": "conv_transpose w: (*kernel, C_out / groups, C_in)",
    "bias": "b: (C_out,)",
    "indices": "max-pool indices: flat row-major index within each (n, c) input plane",
    "roles": "forward reads x, w, b; backward adds dy; jvp adds tangents tx, tw, tb; "
             "double_backward adds dy and the cotangents gx, gw, gb of dx, dw, db",
}


class CorpusError(Exception):
    """A corpus that cannot be used: a missing or altered file (named), or a bad manifest."""


@dataclass(frozen=True)
class Entry:
    """One case of a loaded corpus: its inputs, expected outputs, bounds and trust."""

    case: Case
    inputs: Inputs
    expected: dict
    bounds: dict
    mistrusted: str | None


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _save(directory: str, rel: str, a: np.ndarray) -> dict:
    kind = "<i8" if a.dtype.kind in "iu" else "<f8"
    a = np.ascontiguousarray(np.asarray(a).astype(kind))
    path = os.path.join(directory, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, a, allow_pickle=False)
    return {"file": rel, "dtype": kind, "shape": list(a.shape), "sha256": _sha256(path)}


def _case_fields(case: Case) -> dict:
    fields = case.to_dict()
    fields.pop("tags", None)
    fields["inputs_kind"] = fields.pop("inputs")
    fields.update(id=case.id, family=case.family, rank=case.rank, tier=case.tier,
                  outputs=list(case.output_names()))
    if "padding" in case.params:
        # 'same' and friends resolved, so that a runner needs no padding rule of its own.
        fields["explicit_padding"] = [list(p) for p in geometry.explicit_pads(case)]
    return fields


def export(directory: str, cases, *, progress=None) -> dict:
    """Write ``cases`` (their inputs, references and bounds) and the manifest to ``directory``.

    Cases without inputs (a kernel larger than the padded input: they check refusals)
    are listed under ``skipped`` with the reason. Returns the manifest.
    """
    import refcnn

    from crosscheck.runner import prepared
    from crosscheck.trust import degenerate

    os.makedirs(directory, exist_ok=True)
    entries, skipped, seen = [], [], set()
    for case in cases:
        if case.id in seen:
            continue
        seen.add(case.id)
        try:
            inputs, ref, bnds = prepared(case)
        except ValueError as exc:
            skipped.append({"id": case.id, "reason": str(exc)})
            continue
        base = f"cases/{case.id}"
        files = {"inputs": {}, "expected": {}, "allowed": {}}
        for role in ROLES:
            a = getattr(inputs, role)
            if a is not None:
                files["inputs"][role] = _save(directory, f"{base}/{role}.npy", a)
        for name in case.output_names():
            files["expected"][name] = _save(directory, f"{base}/expected.{name}.npy", ref[name])
            allowed = _save(directory, f"{base}/allowed.{name}.npy",
                            np.broadcast_to(bnds[name].allowed, ref[name].shape))
            allowed.update(bound=bnds[name].description, K=bnds[name].terms)
            files["allowed"][name] = allowed
        entries.append({**_case_fields(case), "mistrusted": degenerate(case, ref, inputs),
                        "files": files})
        if progress:
            progress(case)
    manifest = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                "generator": {"refcnn": refcnn.__version__, "numpy": np.__version__},
                "layout": LAYOUT, "bound": BOUND_FORMULA, "comparison": COMPARISON,
                "cases": entries, "skipped": skipped}
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise CorpusError(f"{path}: no manifest (is {directory} a corpus?)") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path} is not JSON: {exc}") from None
    if manifest.get("schema") != SCHEMA:
        raise CorpusError(f"{path}: schema {manifest.get('schema')!r}, not {SCHEMA!r}")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CorpusError(f"{path}: schema_version {manifest.get('schema_version')!r}; this "
                          f"crosscheck reads version {SCHEMA_VERSION}")
    return manifest


def verify(directory: str, manifest: dict) -> None:
    """CorpusError naming the first file that is missing or does not match its sha256."""
    for entry in manifest["cases"]:
        for group in entry["files"].values():
            for meta in group.values():
                path = os.path.join(directory, meta["file"])
                if not os.path.isfile(path):
                    raise CorpusError(f"{meta['file']} is missing (case {entry['id']})")
                digest = _sha256(path)
                if digest != meta["sha256"]:
                    raise CorpusError(f"{meta['file']} does not match its sha256 in "
                                      f"{MANIFEST} (case {entry['id']}: expected "
                                      f"{meta['sha256']}, got {digest}): the corpus was altered")


def _load_array(directory: str, meta: dict) -> np.ndarray:
    a = np.load(os.path.join(directory, meta["file"]), allow_pickle=False)
    if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"]:
        raise CorpusError(f"{meta['file']}: {a.dtype.str} {list(a.shape)}, but the manifest "
                          f"says {meta['dtype']} {meta['shape']}")
    a.setflags(write=False)
    return a


def load(directory: str) -> list[Entry]:
    """Every case of the corpus at ``directory``, after checking every file's hash."""
    manifest = read_manifest(directory)
    verify(directory, manifest)
    entries = []
    for e in manifest["cases"]:
        spec = {k: e[k] for k in ("op", "direction", "n", "spatial", "c_in", "c_out", "params",
                                  "dtype", "seed")}
        case = Case.from_dict({**spec, "inputs": e["inputs_kind"]})
        if case.id != e["id"]:
            raise CorpusError(f"{MANIFEST}: case {e['id']} reads back as {case.id}")
        files = e["files"]
        inputs = Inputs(**{role: _load_array(directory, files["inputs"][role])
                           if role in files["inputs"] else None for role in ROLES})
        expected = {k: _load_array(directory, m) for k, m in files["expected"].items()}
        bounds = {k: tolerance.Bound(_load_array(directory, m), m.get("bound", ""), m.get("K"))
                  for k, m in files["allowed"].items()}
        entries.append(Entry(case, inputs, expected, bounds, e.get("mistrusted")))
    return entries


def check(directory: str, backends: dict, *, progress=None) -> list:
    """Judge every backend on every case of the corpus: a list of
    :class:`crosscheck.runner.CaseResult`. CorpusError when the corpus is not intact."""
    from crosscheck import isolation
    from crosscheck.runner import judge

    results = []
    for entry in load(directory):
        for name, backend in backends.items():
            if getattr(backend, "isolated", False):
                answer = backend.call(entry.case, entry.inputs)
            else:
                answer = isolation.call_in_process(backend, entry.case,
                                                   lambda e=entry: e.inputs)
            result = judge(entry.case, name, answer,
                           expected=(entry.expected, entry.bounds, entry.mistrusted))
            result.outputs = None
            results.append(result)
            if progress:
                progress(result)
    return results
