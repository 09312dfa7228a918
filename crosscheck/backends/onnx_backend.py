"""ONNX as two backends: ONNX Runtime (``onnxruntime``) and the ONNX reference evaluator
(``onnx.reference``), both running one-node graphs built with ``onnx.helper``, forward only.

Both share one graph builder. ONNX is channels-first: data ``(N, C, *spatial)``, Conv
weights ``(C_out, C_in/group, *k)``, ConvTranspose weights ``(C_in, C_out/group, *k)``,
which is what the driver's channels-first move makes of the canonical weights. How each
case reaches ONNX, in the case's native spelling where ONNX has one:

* conv: ``Conv`` with ``group``; 'same', 'same_lower', 'valid' as ``auto_pad`` SAME_UPPER,
  SAME_LOWER, VALID (ONNX's own split is under test), explicit ``pads`` otherwise (ONNX
  orders them all begins, then all ends).
* transposed conv: ``ConvTranspose`` with ``output_padding``, ``pads``, ``dilations``,
  ``group``. Its ``auto_pad`` SAME_* fixes the output at ``input * stride``, which is not
  a padding the suite's transposed conv has: those cases are unsupported.
* pools: ``MaxPool`` (its ``Indices`` output when the case asks for indices) and
  ``AveragePool`` with ``ceil_mode`` and ``count_include_pad`` (ONNX's default for the
  latter is 0, torch's True: always passed); no ``divisor_override`` in ONNX.
* adaptive pools: ``GlobalAveragePool``/``GlobalMaxPool`` for output size 1 (a global
  max pool with indices is a ``MaxPool`` over the whole plane, which has them); ONNX
  has no other adaptive pooling.

ONNX's max-pool indices (``storage_order`` 0) are flat over the whole NCHW tensor;
torch's, the suite's, are flat within each ``(n, c)`` plane: the plane index is the
ONNX index modulo the plane size.

Which opset: a runtime implements an op per version range and dtype (ONNX Runtime has
no float64 Conv or AveragePool on CPU, for instance), so each backend probes, once per
(op, dtype, rank, outputs), every version of the op's schema from the newest down with
a tiny graph, keeps the first that builds and runs, and records why when none does.
An attribute newer than the chosen version (AveragePool ``dilations`` came in 19)
makes its cases unsupported. Geometry comes from :mod:`crosscheck.geometry`, never refcnn.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

import ml_dtypes
import onnx
from onnx import TensorProto, helper

from crosscheck import geometry
from crosscheck.backends.base import Unsupported
from crosscheck.backends.driver import OpImpl, TableBackend
from crosscheck.cases import Case

_ELEM = {"float64": TensorProto.DOUBLE, "float32": TensorProto.FLOAT,
         "float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}
_NUMPY = {"float64": np.float64, "float32": np.float32, "float16": np.float16,
          "bfloat16": ml_dtypes.bfloat16}
_AUTO_PAD = {"same": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}
#: The opset that introduced each attribute the builder may set (absent: present from 1).
_ATTR_SINCE = {"MaxPool": {"dilations": 10, "ceil_mode": 10},
               "AveragePool": {"count_include_pad": 7, "ceil_mode": 10, "dilations": 19}}
#: MaxPool's Indices output came in opset 8.
_INDICES_SINCE = 8
#: Built sessions kept per backend (one per compile key: shapes, options, dtype).
MAX_SESSIONS = 128
NO_GRADIENTS = "runs inference only: no gradients"


@dataclass(frozen=True)
class Node:
    """One ONNX node: its type, attributes, and whether it has bias/indices/weights."""

    op_type: str
    attrs: dict
    weighted: bool = False
    bias: bool = False
    indices: bool = False

    def min_opset(self) -> int:
        since = _ATTR_SINCE.get(self.op_type, {})
        found = [since.get(a, 1) for a in self.attrs]
        return max(found + [_INDICES_SINCE if self.indices else 1])


def _pads_attr(case: Case) -> dict:
    if isinstance(case.padding, str):
        return {"auto_pad": _AUTO_PAD[case.padding]}
    pads = geometry.explicit_pads(case)
    return {"pads": [a for a, _ in pads] + [b for _, b in pads]}


def node_for(case: Case) -> Node:
    """The ONNX node computing ``case`` (ValueError for what ONNX cannot express)."""
    family = case.family
    if family in ("conv", "conv_transpose"):
        attrs = dict(kernel_shape=list(case.kernel), strides=list(case.stride),
                     dilations=list(case.dilation), group=case.groups)
        if family == "conv_transpose":
            if case.padding in ("same", "same_lower"):
                raise ValueError("ONNX ConvTranspose's SAME_UPPER/SAME_LOWER fix the output at "
                                 "input * stride: not the suite's transposed-conv padding")
            if any(q >= s for q, s in zip(case.output_padding, case.stride)):
                # ONNX says "less than the corresponding stride/dilation"; both runtimes
                # read it as stride (ONNX Runtime rejects the model, the reference
                # evaluator's col2im raises), torch allows below max(stride, dilation).
                raise ValueError(
                    f"ONNX ConvTranspose needs output_padding < stride (output_padding="
                    f"{case.output_padding}, stride={case.stride}; onnxruntime#14208)")
            attrs["output_padding"] = list(case.output_padding)
        attrs.update(_pads_attr(case))
        return Node("Conv" if family == "conv" else "ConvTranspose", attrs, weighted=True,
                    bias=case.bias)
    if family.startswith("adaptive"):
        if set(case.output_size) != {1}:
            raise ValueError(f"ONNX has no adaptive pooling (output_size={case.output_size}); "
                             "only GlobalAveragePool/GlobalMaxPool, output size 1")
        if family == "adaptive_max_pool" and case.return_indices:
            # GlobalMaxPool has no Indices output; a MaxPool over the whole plane does.
            return Node("MaxPool", dict(kernel_shape=list(case.spatial),
                                        strides=list(case.spatial)), indices=True)
        return Node("GlobalAveragePool" if family == "adaptive_avg_pool" else "GlobalMaxPool",
                    {})
    attrs = dict(kernel_shape=list(case.kernel), strides=list(case.stride))
    attrs.update(_pads_attr(case))
    if set(case.dilation) != {1}:
        attrs["dilations"] = list(case.dilation)
    if case.ceil_mode:
        attrs["ceil_mode"] = 1
    if family == "max_pool":
        return Node("MaxPool", attrs, indices=case.return_indices)
    if case.divisor_override is not None:
        raise ValueError("ONNX AveragePool has no divisor_override")
    attrs["count_include_pad"] = int(case.count_include_pad)
    return Node("AveragePool", attrs)


def build_model(node: Node, opset: int, dtype: str, shapes: dict) -> onnx.ModelProto:
    """A one-node model at ``opset``; ``shapes`` maps x, w, b, y (and indices) to shapes."""
    elem = _ELEM[dtype]
    names = ["x"] + (["w"] if node.weighted else []) + (["b"] if node.bias else [])
    outs = ["y"] + (["indices"] if node.indices else [])
    inputs = [helper.make_tensor_value_info(n, elem, shapes[n]) for n in names]
    outputs = [helper.make_tensor_value_info("y", elem, shapes["y"])]
    if node.indices:
        outputs.append(helper.make_tensor_value_info("indices", TensorProto.INT64,
                                                     shapes["y"]))
    graph = helper.make_graph([helper.make_node(node.op_type, names, outs, **node.attrs)],
                              node.op_type.lower(), inputs, outputs)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets,
                             ir_version=helper.find_min_ir_version_for(opsets))


def op_versions(op_type: str) -> tuple[int, ...]:
    """The versions of ``op_type``'s schema that this onnx knows, newest first."""
    return tuple(sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                         if s.name == op_type and s.domain == ""}, reverse=True))


def plane_indices(idx: np.ndarray, spatial) -> np.ndarray:
    """ONNX MaxPool indices (flat over the NCHW tensor) as torch's (flat within each plane)."""
    return np.asarray(idx, dtype=np.int64) % max(math.prod(spatial), 1)


class OnnxBackend(TableBackend):
    """The shared driver of both ONNX backends; subclasses say how to build and run a model."""

    channels_first = True
    dtypes = _NUMPY
    runtime = "ONNX"

    def __init__(self):
        impl = OpImpl(self._forward, unsupported=self._case_unsupported)
        self.ops = {family: impl for family in ("conv", "conv_transpose", "max_pool",
                                                "avg_pool", "adaptive_avg_pool",
                                                "adaptive_max_pool")}
        self._opsets: dict[tuple, int | str] = {}
        self._sessions: OrderedDict = OrderedDict()

    # ---- what a subclass provides ---------------------------------------------------------------
    def build(self, model: onnx.ModelProto):
        """A runnable session of ``model``."""
        raise NotImplementedError

    def execute(self, session, feeds: dict) -> list:
        raise NotImplementedError

    def refuses(self, case: Case, node: Node) -> str | None:
        """Why the runtime rejects this valid node (its own documented limits), or None."""
        return None

    # ---- arrays -------------------------------------------------------------------------------
    def to_framework(self, a: np.ndarray, dtype):
        return np.array(a, dtype=dtype, copy=True)

    def to_numpy(self, t) -> np.ndarray:
        return np.asarray(t)

    # ---- what runs ----------------------------------------------------------------------------
    def unsupported(self, case: Case) -> str | None:
        if case.direction == "backward":
            return f"{self.runtime} {NO_GRADIENTS}"
        return super().unsupported(case)

    def _case_unsupported(self, case: Case) -> str | None:
        try:
            node = node_for(case)
        except ValueError as exc:
            return str(exc)
        opset = self.opset(node.op_type, case.dtype, case.rank, node.indices)
        if isinstance(opset, str):
            return opset
        refused = self.refuses(case, node)
        if refused:
            return refused
        if node.min_opset() > opset:
            return (f"{self.runtime} implements {node.op_type} in {case.dtype} only at opset "
                    f"{opset}, older than the attributes this case needs "
                    f"(opset {node.min_opset()}: {sorted(node.attrs)})")
        return None

    def opset(self, op_type: str, dtype: str, rank: int, indices: bool = False) -> int | str:
        """The newest opset at which the runtime runs ``op_type`` in ``dtype`` (probed once),
        or why it runs it at none."""
        key = (op_type, dtype, rank, indices)
        if key not in self._opsets:
            self._opsets[key] = self._probe(*key)
        return self._opsets[key]

    def _probe(self, op_type: str, dtype: str, rank: int, indices: bool) -> int | str:
        node = Node(op_type, {} if op_type.startswith("Global") else
                    {"kernel_shape": [2] * rank}, weighted=op_type.startswith("Conv"),
                    indices=indices)
        size = (3,) * rank
        out = (1,) * rank if op_type.startswith("Global") else \
            (4,) * rank if op_type == "ConvTranspose" else (2,) * rank
        shapes = {"x": (1, 1, *size), "w": (1, 1, *(2,) * rank), "y": (1, 1, *out)}
        feeds = {"x": np.ones(shapes["x"], _NUMPY[dtype])}
        if node.weighted:
            feeds["w"] = np.ones(shapes["w"], _NUMPY[dtype])
        tried, last = [], ""
        for opset in op_versions(op_type):
            if indices and opset < _INDICES_SINCE:
                break
            tried.append(opset)
            try:
                self.execute(self.build(build_model(node, opset, dtype, shapes)), feeds)
            except Exception as exc:  # noqa: BLE001 - any refusal means: not at this opset
                text = str(exc).strip()
                last = text.splitlines()[0] if text else type(exc).__name__
                continue
            return opset
        what = f"{op_type}{' with Indices' if indices else ''} ({rank}-D)"
        return (f"{self.runtime} {self.version()} runs no {dtype} {what} at any opset "
                f"{tuple(tried)}: {last}")

    def _forward(self, case: Case, x, w, b):
        node = node_for(case)
        key = case.compile_key
        session = self._sessions.get(key)
        if session is None:
            opset = self.opset(node.op_type, case.dtype, case.rank, node.indices)
            out = case.out_spatial()
            shapes = {"x": x.shape, "y": (case.n, case.c_out, *out)}
            if w is not None:
                shapes["w"] = w.shape
            if b is not None:
                shapes["b"] = b.shape
            session = self._known_crash(case, self.build,
                                        build_model(node, opset, case.dtype, shapes))
            self._sessions[key] = session
            if len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(key)
        feeds = {"x": x}
        if node.weighted:
            feeds["w"] = w
        if node.bias:
            feeds["b"] = b
        result = self._known_crash(case, self.execute, session, feeds)
        if node.indices:
            return result[0], plane_indices(result[1], case.spatial)
        return result[0]

    def _known_crash(self, case: Case, fn, *args):
        """``fn(*args)``; a runtime that raises on a case of a registered known bug of its own
        cannot run that case (Unsupported, naming the bug); any other error propagates."""
        try:
            return fn(*args)
        except Exception as exc:
            from crosscheck import semantics  # the registry of known bugs, not an oracle

            bug = semantics.known_bug(case, self.name)
            if bug is None:
                raise
            text = str(exc).strip().splitlines()
            raise Unsupported(f"{self.runtime} raises on this case, known bug {bug.key} "
                              f"({'; '.join(bug.sources)}): {type(exc).__name__}: "
                              f"{text[-1] if text else ''}") from exc

    def opsets_chosen(self) -> dict:
        """``"MaxPool float64 2-D"`` -> the opset probed, or why none runs."""
        return {f"{op} {dtype} {rank}-D{' indices' if idx else ''}": v
                for (op, dtype, rank, idx), v in sorted(self._opsets.items())}


class OnnxRuntimeBackend(OnnxBackend):
    """ONNX Runtime's CPU execution provider, one intra-op thread, default optimizations."""

    name = "onnxruntime"
    runtime = "ONNX Runtime"
    #: One thread: the runs share the machine with other work, and results are deterministic.
    INTRA_OP_THREADS = 1

    def __init__(self):
        import onnxruntime  # imported here: onnx.reference must not need onnxruntime

        self.ort = onnxruntime
        self.providers = ["CPUExecutionProvider"]
        super().__init__()

    def version(self) -> str:
        return self.ort.__version__

    def settings(self) -> dict:
        return {"onnxruntime": self.ort.__version__, "onnx": onnx.__version__,
                "providers": self.providers, "intra_op_threads": self.INTRA_OP_THREADS,
                "inter_op_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL (default)",
                "opsets": self.opsets_chosen()}

    def build(self, model):
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = self.INTRA_OP_THREADS
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the opset probe's refusals are expected
        return self.ort.InferenceSession(model.SerializeToString(), options,
                                         providers=self.providers)

    def execute(self, session, feeds):
        return session.run(None, feeds)

    def refuses(self, case: Case, node: Node) -> str | None:
        # Checks in ONNX Runtime's shape code that reject models the ONNX spec allows;
        # the unit tests check that ONNX Runtime still rejects them.
        auto = node.attrs.get("auto_pad", "NOTSET")
        if auto.startswith("SAME") and set(case.dilation) != {1}:
            return (f"ONNX Runtime rejects dilation with auto_pad {auto} ('Dilation not "
                    "supported for AutoPadType::SAME_UPPER or AutoPadType::SAME_LOWER', "
                    "onnxruntime#20582)")
        pads = node.attrs.get("pads")
        if "Pool" in node.op_type and pads and any(
                p >= k for p, k in zip(pads, 2 * node.attrs["kernel_shape"])):
            return (f"ONNX Runtime pooling needs pads < kernel_shape (pads={pads}, "
                    f"kernel_shape={node.attrs['kernel_shape']}: 'Pad should be smaller than "
                    "kernel', pool_attributes.h; onnxruntime#801)")
        return None


class OnnxReferenceBackend(OnnxBackend):
    """``onnx.reference.ReferenceEvaluator``: the NumPy implementation of the ONNX spec."""

    name = "onnx.reference"
    runtime = "ONNX reference evaluator"

    def __init__(self):
        from onnx.reference import ReferenceEvaluator

        self.evaluator = ReferenceEvaluator
        super().__init__()

    def version(self) -> str:
        return onnx.__version__

    def settings(self) -> dict:
        return {"onnx": onnx.__version__, "numpy": np.__version__,
                "evaluator": "onnx.reference.ReferenceEvaluator (NumPy; threads are NumPy's)",
                "opsets": self.opsets_chosen()}

    def build(self, model):
        return self.evaluator(model)

    def execute(self, session, feeds):
        with warnings.catch_warnings():
            # NumPy's warnings from inside the evaluator (a mean of an empty window, ...):
            # what it returns is judged anyway.
            warnings.simplefilter("ignore", RuntimeWarning)
            return session.run(None, feeds)
