"""The networks sweep: real layers at real sizes, as data (``crosscheck.networks``).

The table is checked as data (every row a valid case of the op table, ids that parse
back, repeats folded into one case that names every layer, the known layer counts and
output sizes of the papers), and a small slice runs on refcnn and torch by default;
``crosscheck run --cases networks`` runs all of it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from crosscheck import networks
from crosscheck.backends import BackendUnavailable, get_backend
from crosscheck.cases import Case, Inputs
from crosscheck.runner import run_case
from crosscheck.sweeps import SIZES, sweep

#: Conv layers of each network's reference implementation (its Conv modules, counted).
CONV_COUNTS = {"resnet50": 53, "vgg16": 13, "mobilenet_v2": 52, "efficientnet_b0": 81,
               "inception_v3": 96, "wav2vec2": 7, "r3d_18": 20}


def _layer(network: str, name: str) -> networks.Layer:
    found = [row for row in networks.layers() if row.network == network and row.name == name]
    assert len(found) == 1, f"{network} {name}: {len(found)} rows in the table, expected 1"
    return found[0]


def _reference_accepts(case: Case) -> None:
    """The reference runs the geometry on an empty batch (as ``sweeps.valid`` probes it)."""
    probe = case.with_(n=0)
    out = probe.out_spatial()
    w_shape = probe.entry.weight_shape(probe)
    w = None if w_shape is None else np.zeros(w_shape)
    b = np.zeros(probe.c_out) if probe.is_conv and probe.bias else None
    probe.entry.reference(probe, Inputs(np.zeros((0, *probe.spatial, probe.c_in)), w, b,
                                        np.zeros((0, *out, probe.c_out))))


def test_networks_table_covers_the_networks():
    convs = Counter(row.network for row in networks.layers() if row.case.family == "conv")
    assert dict(convs) == CONV_COUNTS, "conv layers per network differ from the reference models"
    ranks = {row.network: row.case.rank for row in networks.layers()}
    assert ranks == {"resnet50": 2, "vgg16": 2, "mobilenet_v2": 2, "efficientnet_b0": 2,
                     "inception_v3": 2, "wav2vec2": 1, "r3d_18": 3}
    assert all(row.case.n == 1 for row in networks.layers()), "the networks sweep is batch 1"


@pytest.mark.parametrize("geometry", networks.geometries(), ids=lambda c: c.id)
def test_networks_geometry_valid_for_reference(geometry):
    assert min(geometry.out_spatial()) >= 1, f"{geometry.id} ({geometry.tags}) has no output"
    _reference_accepts(geometry)


def test_networks_ids_parse_back():
    for case in networks.network_cases():
        assert Case.from_id(case.id) == case, f"{case.id} does not parse back"


def test_networks_deduplicated():
    geometries = networks.geometries()
    ids = [g.id for g in geometries]
    assert len(ids) == len(set(ids)), "two cases of the networks sweep share a geometry"
    tags = [t for g in geometries for t in g.tags]
    rows = [row.tag for row in networks.layers()]
    assert sorted(tags) == sorted(rows), "every layer is named by exactly one case"
    assert len(rows) == len(set(rows)), "a layer name appears twice in a network's table"
    for g in geometries:
        shapes = {row.case.id for row in networks.layers() if row.tag in g.tags}
        assert shapes == {g.id}, f"{g.id} names layers of another geometry: {shapes}"
    # Repeats are folded: ResNet-50's 16 bottlenecks reduce to a few distinct convs.
    resnet = [g for g in geometries if any(t.startswith("resnet50 ") for t in g.tags)]
    assert len(resnet) == 25
    shared = next(g for g in geometries if "resnet50 layer3.1.conv2" in g.tags)
    assert {f"resnet50 layer3.{i}.conv2" for i in range(1, 6)} <= set(shared.tags)


def test_networks_cases_dtypes_and_directions():
    cases = networks.network_cases()
    assert len(cases) == 4 * len(networks.geometries())
    assert {(c.dtype, c.direction) for c in cases} == {
        (d, r) for d in ("float32", "float16") for r in ("forward", "backward")}
    assert networks.network_cases(dtypes=("bfloat16",), directions=("forward",))[0].dtype == \
        "bfloat16"
    with pytest.raises(ValueError, match="dtype"):
        networks.network_cases(dtypes=("float8",))


def test_networks_is_a_sweep_size_not_filtered():
    assert "networks" in SIZES
    cases = sweep("networks")
    assert cases == networks.network_cases()
    # The drawn sweeps cap outputs at 200,000 elements; real layers are bigger.
    vgg = next(c for c in cases if "vgg16 features.2" in c.tags)
    assert np.prod(vgg.out_spatial()) * vgg.c_out == 224 * 224 * 64


@pytest.mark.parametrize(("network", "name", "out", "channels"), [
    ("resnet50", "conv1", (112, 112), 64),
    ("resnet50", "maxpool", (56, 56), 64),
    ("resnet50", "layer4.0.conv2", (7, 7), 512),
    ("resnet50", "avgpool", (1, 1), 2048),
    ("vgg16", "features.30", (7, 7), 512),
    ("mobilenet_v2", "features.18.0", (7, 7), 1280),
    ("efficientnet_b0", "features.6.0.block.1.0", (7, 7), 672),
    ("inception_v3", "Conv2d_4a_3x3.conv", (71, 71), 192),
    ("inception_v3", "Mixed_6a.branch3x3.conv", (17, 17), 384),
    ("inception_v3", "Mixed_7a.branch3x3_2.conv", (8, 8), 320),
    ("inception_v3", "AuxLogits.conv1.conv", (1, 1), 768),
    ("wav2vec2", "feature_extractor.conv_layers.0.0", (3199,), 512),
    ("wav2vec2", "feature_extractor.conv_layers.6.0", (49,), 512),
    ("r3d_18", "stem.0", (16, 56, 56), 64),
    ("r3d_18", "layer4.1.conv2.0", (2, 7, 7), 512),
])
def test_networks_output_sizes_as_published(network, name, out, channels):
    case = _layer(network, name).case
    assert (case.out_spatial(), case.c_out) == (out, channels), \
        f"{network} {name}: output {case.out_spatial()}x{case.c_out}, expected {out}x{channels}"


def test_networks_final_grids_as_published():
    # Inception-v3 ends on an 8x8x2048 grid, ResNet-50 on 7x7x2048, R3D-18 on 2x7x7x512.
    for network, shape in (("inception_v3", ((8, 8), 2048)), ("resnet50", ((7, 7), 2048)),
                           ("r3d_18", ((2, 7, 7), 512))):
        case = _layer(network, "avgpool").case
        assert (case.spatial, case.c_in) == shape, f"{network} avgpool input {case.spatial}"
        assert case.output_size == (1,) * case.rank
    frames = _layer("wav2vec2", "feature_extractor.conv_layers.0.0").case.spatial
    assert frames == (16000,)


def test_networks_slice_is_small_and_deterministic():
    first = networks.slice_cases(14)
    assert first == networks.slice_cases(14) and len(first) == 14
    assert {t.split(" ", 1)[0] for c in first for t in c.tags} >= set(networks.TABLES)
    assert {c.dtype for c in first} == {"float32", "float16"}
    assert {c.direction for c in first} == {"forward", "backward"}
    everything = set(networks.network_cases())
    assert set(first) <= everything


def _backends():
    found = {"refcnn": get_backend("refcnn")}
    try:
        found["torch"] = get_backend("torch")
    except BackendUnavailable:
        pass  # torch is optional: refcnn alone still checks the fast path against the spec
    return found


@pytest.mark.parametrize("case", networks.slice_cases(14), ids=lambda c: f"{c.id}")
def test_networks_slice_agrees_with_reference(case):
    results = run_case(case, _backends())
    bad = [r.summary() for r in results if r.status != "passed"]
    assert not bad, f"{case.tags}:\n" + "\n".join(bad) + \
        f"\nrerun: crosscheck run --case {case.id} --backends refcnn,torch"
