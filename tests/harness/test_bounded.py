"""A long run's memory stays flat: compact results, compiled functions recycled between keys.

Fakes only (refcnn and a counting backend), so no framework is needed; TensorFlow's own
clear_compiled() is checked where TensorFlow is installed.
"""

import json

import numpy as np
import pytest

from crosscheck import bounded, report
from crosscheck.backends.driver import TableBackend
from crosscheck.backends.refcnn_backend import RefcnnBackend
from crosscheck.cases import Case, make_inputs
from crosscheck.cli import RunState, execute
from crosscheck.runner import run_case
from crosscheck.statuses import Status
from crosscheck.sweeps import sweep

POOL = Case.of("max_pool", 2, n=1, spatial=(5, 5), c_in=2, kernel=2)


class Compiling(RefcnnBackend):
    """refcnn that 'compiles' one function per compile key, as JAX does, and counts."""

    name = "compiling"

    def __init__(self):
        super().__init__()
        self.alive, self.compiles, self.clears = set(), [], 0

    def run(self, case, inputs):
        if case.compile_key not in self.alive:
            self.alive.add(case.compile_key)
            self.compiles.append(case.compile_key)
        return super().run(case, inputs)

    def compiled_count(self):
        return len(self.alive)

    def clear_compiled(self):
        self.alive.clear()
        self.clears += 1


class OffByOne(RefcnnBackend):
    name = "off"

    def run(self, case, inputs):
        return {k: v + 1 for k, v in super().run(case, inputs).items()}


def test_compact_keeps_every_verdict_and_the_json_and_drops_passed_reproducers():
    cases = [c for c in sweep("smoke") if c.family in ("max_pool", "conv")][:12]
    backends = {"refcnn": RefcnnBackend(), "off": OffByOne(), "loops": TableBackend()}
    results = [r for c in cases for r in run_case(c, backends)]
    assert {r.status for r in results} >= {Status.PASSED, Status.FAILED, Status.UNSUPPORTED}
    dicts = [(r.to_dict(slim=True), r.to_dict(), r.summary()) for r in results]
    assert bounded.compact(results) is results
    for r, (slim, full, summary) in zip(results, dicts):
        assert r.to_dict(slim=True) == slim and r.summary() == summary
        if r.status not in bounded.SLIM:
            assert r.to_dict() == full
        assert r.outputs is None
        for d in r.discrepancies:
            # A failure keeps its reproducer; a pass needs only its case id to rerun.
            assert bool(d.reproduce) == (r.status not in bounded.SLIM)
    slim = [r for r in results if r.status in bounded.SLIM and len(r.discrepancies) > 1]
    assert slim
    for r in slim:  # one case id string per case, not one per output
        assert len({id(d.case_id) for d in r.discrepancies}) == 1


def test_streamed_json_is_the_json_report_byte_for_byte(tmp_path):
    backends = {"refcnn": RefcnnBackend(), "off": OffByOne()}
    results = bounded.compact([r for c in sweep("smoke")[:8] for r in run_case(c, backends)])
    meta = {"command": "crosscheck run", "complete": True}
    path = tmp_path / "r.json"
    report.write_json(path, results, versions_={"v": 1}, meta=meta)
    whole = report.json_report(results, versions_={"v": 1}, meta=meta)
    assert path.read_text() == json.dumps(whole, separators=(",", ":"), default=str)
    report.write_json(path, [], versions_={}, meta=None)
    assert json.loads(path.read_text())["results"] == []
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_recycle_only_from_the_threshold_and_only_on_backends_that_can():
    be = Compiling()
    be.alive = {"a", "b"}
    assert not bounded.recycle([be, RefcnnBackend()], at=3)
    assert bounded.recycle([be, RefcnnBackend()], at=2) and be.clears == 1 and not be.alive


def test_serial_run_recycles_between_keys_and_compiles_each_key_once(monkeypatch):
    # A probe geometry's float32 kind sits between its other kinds in the list: the two keys
    # are open together, and nothing is cleared until both are done.
    monkeypatch.setattr(bounded, "RECYCLE_AT", 3)
    cases = list(sweep("smoke"))
    be, most = Compiling(), [0]
    run = be.run

    def counting(case, inputs):
        out = run(case, inputs)
        most[0] = max(most[0], be.compiled_count())
        return out

    be.run = counting
    state = RunState(len(cases))
    execute(cases, {"compiling": be}, "bound", 1, state)
    assert state.complete and be.clears >= 10
    assert len(be.compiles) == len(set(be.compiles)) > 90  # none compiled twice
    # Alive at most: under the threshold at a clean point, plus the keys met before the next.
    clean, keys, segments = -1, [], []
    last = {c.compile_key: i for i, c in enumerate(cases)}
    for i, c in enumerate(cases):
        keys.append(c.compile_key)
        clean = max(clean, last[c.compile_key])
        if i >= clean:
            segments.append(len(set(keys)))
            keys = []
    assert most[0] <= 3 - 1 + max(segments) < len(be.compiles) / 3


def test_recycler_waits_for_a_key_that_comes_back(monkeypatch):
    monkeypatch.setattr(bounded, "RECYCLE_AT", 1)
    a, b = POOL, POOL.with_(n=2)
    cases = [a, b, a.with_(seed=1), b.with_(seed=1), POOL.with_(n=3)]
    be = Compiling()
    be.alive = {"x", "y"}
    recycler = bounded.Recycler(cases, [be])
    assert [recycler.after(i) for i in range(5)] == [False, False, False, True, False]
    assert be.clears == recycler.recycled == 1


def test_a_chunk_recycles_in_its_worker_and_keeps_its_results(monkeypatch):
    from crosscheck import cli

    cases = [c for c in sweep("smoke") if c.family == "max_pool"][:6]
    backend = Compiling()
    monkeypatch.setattr(bounded, "RECYCLE_AT", 1)
    monkeypatch.setattr(cli, "_worker_backends", {"compiling": backend})
    done = cli._run_chunk(list(enumerate(cases)))
    assert [i for i, _ in done] == list(range(len(cases)))
    expected = [[r.status for r in run_case(c, {"compiling": Compiling()})] for c in cases]
    assert [[r.status for r in rs] for _, rs in done] == expected
    assert all(r.outputs is None for _, rs in done for r in rs)
    assert backend.clears == 1 and not backend.alive


def test_tensorflow_clear_compiled_relearns_and_agrees():
    pytest.importorskip("tensorflow")
    from crosscheck.backends.tensorflow_backend import TensorflowBackend

    be = TensorflowBackend()
    case = Case.of("conv", 2, "backward", n=1, spatial=(6, 5), c_in=2, c_out=3, kernel=3,
                   padding=1)
    before = be.run(case, make_inputs(case))
    assert be.compiled_count() >= 1
    be.clear_compiled()
    assert be.compiled_count() == 0
    after = be.run(case, make_inputs(case))
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_result_store_spills_passed_cases_and_reads_them_back_in_case_order():
    backends = {"refcnn": RefcnnBackend(), "off": OffByOne()}
    cases = [c for c in sweep("smoke") if c.family == "max_pool" and c.dtype == "float64"][:6]
    by_case = [bounded.compact(run_case(c, {"refcnn": backends["refcnn"]})) for c in cases]
    by_case[2] = bounded.compact(run_case(cases[2], backends))  # a failure: kept in memory
    assert {r.status for r in by_case[2]} == {Status.PASSED, Status.FAILED}
    store, spilled = bounded.ResultStore(), []
    for i in (3, 0, 5, 2, 1, 4):  # in any order, as workers finish
        store[i] = by_case[i]
        spilled.append(store.spilled_bytes())
    assert len(store) == 6 and 2 in store and sorted(store) == list(range(6))
    assert spilled[3] == spilled[2] < spilled[4]  # the failing case stays in memory
    assert store[2] == by_case[2]
    expected = [r.to_dict(slim=True) for rs in by_case for r in rs]
    results = store.results()
    assert len(results) == len(expected) and store.spilled_bytes() > 0
    assert [r.to_dict(slim=True) for r in results] == expected  # every pass the same
    assert [r.to_dict(slim=True) for r in results] == expected
    assert results[-1].to_dict(slim=True) == expected[-1] and results[1:3] == list(results)[1:3]
    store[0] = by_case[0][:1]  # a case stored again replaces its results
    assert len(store.results()) == len(expected) - len(by_case[0]) + 1
    store.close()


def test_result_store_memory_stays_flat():
    import tracemalloc

    case = POOL.with_(direction="backward")
    results = bounded.compact(run_case(case, {"refcnn": RefcnnBackend()}))
    store = bounded.ResultStore()
    tracemalloc.start()
    for i in range(200):
        store[i] = results
    before = tracemalloc.get_traced_memory()[0]
    for i in range(200, 2200):
        store[i] = results
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown / 2000 < 300, f"{grown / 2000:.0f} bytes kept per stored case"
    store.close()
