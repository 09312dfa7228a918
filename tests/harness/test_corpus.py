"""The portable corpus: export, round trip through ``corpus check``, a tampered file named."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from crosscheck import corpus
from crosscheck.backends import get_backend
from crosscheck.cases import Case
from crosscheck.cli import main
from crosscheck.runner import prepared

IDS = [
    "conv2d-bwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0",
    "conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-exact-float16-s0",
    "max_pool1d-fwd-n2l9c2-k3-s2-p1.1-d1-idx-float64-s0",
    "avg_pool2d-bwd-n1h8w8c2-k2x2-s2x2-p0.0.0.0-d1x1-bfloat16-s0",
    "conv_transpose1d-jvp-n1l5c2o3-k3-s2-p1.1-d1-g1-float64-s0",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("corpus"))
    assert main(["corpus", "export", directory] + [a for i in IDS for a in ("--case", i)]) == 0
    return directory


def _manifest(directory):
    with open(os.path.join(directory, corpus.MANIFEST)) as f:
        return json.load(f)


def test_the_manifest_is_plain_data_with_every_file_hashed(exported):
    m = _manifest(exported)
    assert m["schema"] == corpus.SCHEMA and m["schema_version"] == corpus.SCHEMA_VERSION
    assert "K * A" in m["bound"]["formula"] and m["bound"]["c"] == 2.0
    assert [e["id"] for e in m["cases"]] == IDS
    conv = m["cases"][0]
    assert (conv["op"], conv["family"], conv["rank"], conv["direction"]) == \
        ("conv2d", "conv", 2, "backward")
    assert conv["params"]["padding"] == [[1, 1], [0, 2]] and conv["tier"] == "random"
    assert conv["explicit_padding"] == [[1, 1], [0, 2]] and conv["mistrusted"] is None
    assert m["cases"][1]["tier"] == "exact"
    for entry in m["cases"]:
        for group in entry["files"].values():
            for meta in group.values():
                path = os.path.join(exported, meta["file"])
                with open(path, "rb") as f:
                    assert hashlib.sha256(f.read()).hexdigest() == meta["sha256"]
                a = np.load(path)
                assert a.dtype.str == meta["dtype"] and list(a.shape) == meta["shape"]


def test_the_files_hold_the_inputs_references_and_bounds(exported):
    case = Case.from_id(IDS[0])
    inputs, ref, bounds = prepared(case)
    base = os.path.join(exported, "cases", case.id)
    assert np.array_equal(np.load(os.path.join(base, "x.npy")), inputs.x)
    assert np.array_equal(np.load(os.path.join(base, "expected.dw.npy")), ref["dw"])
    assert np.array_equal(np.load(os.path.join(base, "allowed.dx.npy")), bounds["dx"].allowed)
    indices = os.path.join(exported, "cases", IDS[2], "expected.indices.npy")
    assert np.load(indices).dtype == np.int64
    exact_allowed = os.path.join(exported, "cases", IDS[1], "allowed.y.npy")
    assert not np.load(exact_allowed).any()


def test_a_corpus_round_trips_through_check(exported):
    results = corpus.check(exported, {"refcnn": get_backend("refcnn")})
    assert len(results) == len(IDS)
    assert {str(r.status) for r in results} <= {"passed", "unsupported"}
    assert sum(str(r.status) == "passed" for r in results) >= 3  # refcnn has no bfloat16
    assert main(["corpus", "check", exported, "--backends", "refcnn"]) == 0


def test_a_wrong_kernel_fails_on_the_corpus(exported):
    class Off:
        name = "off"

        def version(self):
            return "planted"

        def unsupported(self, case):
            return None

        def run(self, case, inputs):
            out = get_backend("refcnn").run(case, inputs)
            return {k: v + 1.0 if k != "indices" else v for k, v in out.items()}

    statuses = [str(r.status) for r in corpus.check(exported, {"off": Off()})]
    assert set(statuses) <= {"failed", "unsupported"} and statuses.count("failed") >= 3


def test_a_tampered_file_is_named_and_the_corpus_refused(exported, tmp_path, capsys):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(exported, copy)
    victim = f"cases/{IDS[0]}/expected.dx.npy"
    a = np.load(os.path.join(copy, victim))
    a.flat[0] += 1e-9
    np.save(os.path.join(copy, victim), a)
    with pytest.raises(corpus.CorpusError, match="expected.dx.npy does not match its sha256"):
        corpus.load(copy)
    assert main(["corpus", "check", copy, "--backends", "refcnn"]) == 2
    assert victim in capsys.readouterr().err
    os.remove(os.path.join(copy, victim))
    with pytest.raises(corpus.CorpusError, match="is missing"):
        corpus.load(copy)


def test_a_foreign_manifest_is_refused(tmp_path):
    with open(tmp_path / corpus.MANIFEST, "w") as f:
        json.dump({"schema": corpus.SCHEMA, "schema_version": 99, "cases": []}, f)
    with pytest.raises(corpus.CorpusError, match="schema_version 99"):
        corpus.load(str(tmp_path))
    with pytest.raises(corpus.CorpusError, match="no manifest"):
        corpus.load(str(tmp_path / "nowhere"))
