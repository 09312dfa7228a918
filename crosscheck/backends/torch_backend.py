"""torch as a backend: ``torch.nn.functional`` conv2d / max_pool2d / avg_pool2d on NCHW.

Inputs go through :mod:`crosscheck.layouts` to NCHW/OIHW in the case's dtype;
gradients come from ``torch.autograd.grad`` with ``grad_outputs=dy``. This
module is an independent oracle: it works out 'same' padding itself and never
imports refcnn (nor calls ``Case.resolved_pads``/``Case.out_hw``, which do), so a
geometry bug in refcnn shows up as a disagreement (or a dy shape mismatch).

How each padding form reaches torch:

* conv, symmetric pads: ``padding=(ph, pw)``; asymmetric: ``F.pad`` with zeros,
  then ``padding=0``; ``'same'`` (stride 1 only, pytorch#67551) and ``'valid'``
  natively.
* pools, symmetric pads within torch's limit ``pad <= kernel // 2`` (torch
  counts the undilated kernel, pytorch#7541): natively, with ceil_mode. Anything
  else only where an explicit ``F.pad`` gives the same windows: max pool with
  ``-inf`` padding, or average pool with ``count_include_pad=True`` and zero
  padding, both only without ceil_mode (ceil_mode's rules depend on where the
  explicit padding ends).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from crosscheck import layouts
from crosscheck.backends.base import Unsupported, output_names
from crosscheck.cases import Case, Inputs

_TORCH_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

# float32 must mean float32: no TF32 in cuDNN convolutions or matmuls (irrelevant on
# CPU, set anyway so a GPU run is comparable, and recorded in TorchBackend.settings).
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


# ---- geometry, worked out here (not from refcnn) ---------------------------------------------
def _pool_native_ok(case: Case, pads) -> bool:
    """Whether torch's own pool padding check (``kernel // 2 >= pad``, symmetric) passes."""
    sym = layouts.pads_to_torch_symmetric(pads)
    return sym is not None and all(k // 2 >= p for k, p in zip(case.kernel, sym))


class TorchBackend:
    """``torch.nn.functional`` on CPU (or whatever device torch defaults to), NCHW."""

    name = "torch"

    def __init__(self):
        self._dtype_ok: dict[tuple[str, str], str | None] = {}

    def version(self) -> str:
        return torch.__version__

    def settings(self) -> dict:
        """Precision-relevant settings in force (for reports)."""
        return {
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "num_threads": torch.get_num_threads(),
        }

    # ---- what torch cannot express -----------------------------------------------------------
    def unsupported(self, case: Case) -> str | None:
        reason = self._dtype_reason(case.op, case.dtype)
        if reason:
            return reason
        if case.is_conv:
            if case.padding == "same" and case.stride != (1, 1):
                return ("torch rejects padding='same' for strided convolutions "
                        f"(stride={case.stride}, pytorch#67551)")
            return None
        if case.op == "avg_pool2d" and case.dilation != (1, 1):
            return f"torch avg_pool2d has no dilation (dilation={case.dilation})"
        pads = layouts.explicit_pads(case)
        if _pool_native_ok(case, pads):
            return None
        why = (f"torch pooling needs symmetric pads <= kernel//2 (pads={pads}, "
               f"kernel={case.kernel})")
        if case.ceil_mode:
            return why + "; no exact F.pad emulation with ceil_mode"
        if case.op == "avg_pool2d" and not case.count_include_pad:
            return why + "; no exact F.pad emulation with count_include_pad=False"
        return None

    def _dtype_reason(self, op: str, dtype: str) -> str | None:
        """Probe once per (op, dtype) whether torch runs the op forward and backward."""
        key = (op, dtype)
        if key not in self._dtype_ok:
            self._dtype_ok[key] = _probe(op, _TORCH_DTYPES[dtype])
        return self._dtype_ok[key]

    # ---- running -----------------------------------------------------------------------------
    def run(self, case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
        reason = self.unsupported(case)
        if reason:
            raise Unsupported(reason)
        dt = _TORCH_DTYPES[case.dtype]
        backward = case.direction == "backward"
        x = _tensor(layouts.nhwc_to_nchw(inputs.x), dt, backward)
        if case.is_conv:
            w = _tensor(layouts.hwio_to_oihw(inputs.w), dt, backward)
            b = None if inputs.b is None else _tensor(inputs.b, dt, backward)
            y = self._conv(case, x, w, b)
            if not backward:
                return {"y": layouts.nchw_to_nhwc(_numpy(y))}
            wrt = [x, w] + ([b] if b is not None else [])
            grads = torch.autograd.grad(y, wrt, grad_outputs=_dy(inputs, dt))
            out = {"dx": layouts.nchw_to_nhwc(_numpy(grads[0])),
                   "dw": layouts.oihw_to_hwio(_numpy(grads[1]))}
            if b is not None:
                out["db"] = _numpy(grads[2])
            return {k: out[k] for k in output_names(case)}
        y = self._pool(case, x)
        if not backward:
            return {"y": layouts.nchw_to_nhwc(_numpy(y))}
        (dx,) = torch.autograd.grad(y, [x], grad_outputs=_dy(inputs, dt))
        return {"dx": layouts.nchw_to_nhwc(_numpy(dx))}

    @staticmethod
    def _conv(case: Case, x, w, b):
        common = dict(stride=case.stride, dilation=case.dilation, groups=case.groups)
        if isinstance(case.padding, str):  # 'same' (stride 1) or 'valid', natively
            with warnings.catch_warnings():
                # torch warns that 'same' with an even kernel copies the input: expected.
                warnings.filterwarnings("ignore", message="Using padding='same'")
                return F.conv2d(x, w, b, padding=case.padding, **common)
        sym = layouts.pads_to_torch_symmetric(case.padding)
        if sym is not None:
            return F.conv2d(x, w, b, padding=sym, **common)
        x = F.pad(x, layouts.pads_to_torch_pad(case.padding), value=0.0)
        return F.conv2d(x, w, b, padding=0, **common)

    @staticmethod
    def _pool(case: Case, x):
        pads = layouts.explicit_pads(case)
        if _pool_native_ok(case, pads):
            torch_pad = layouts.pads_to_torch_symmetric(pads)
        else:
            # Exact emulation (unsupported() has ruled out the inexact ones): pad explicitly
            # with the value torch's own padding stands for, then pool without padding.
            fill = -math.inf if case.op == "max_pool2d" else 0.0
            x = F.pad(x, layouts.pads_to_torch_pad(pads), value=fill)
            torch_pad = (0, 0)
        if case.op == "max_pool2d":
            return F.max_pool2d(x, case.kernel, stride=case.stride, padding=torch_pad,
                                dilation=case.dilation, ceil_mode=case.ceil_mode)
        return F.avg_pool2d(x, case.kernel, stride=case.stride, padding=torch_pad,
                            ceil_mode=case.ceil_mode, count_include_pad=case.count_include_pad,
                            divisor_override=case.divisor_override)


def _tensor(a: np.ndarray, dtype, requires_grad: bool):
    # The values are exact in ``dtype`` (Inputs guarantees it), so this cast is exact.
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(dtype)
    return t.requires_grad_(requires_grad)


def _dy(inputs: Inputs, dtype):
    return _tensor(layouts.nhwc_to_nchw(inputs.dy), dtype, False)


def _numpy(t) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def _probe(op: str, dtype) -> str | None:
    """Run a tiny forward and backward of ``op`` in ``dtype``; the error text if torch refuses."""
    try:
        x = torch.ones(1, 1, 4, 4, dtype=dtype, requires_grad=True)
        if op == "conv2d":
            w = torch.ones(1, 1, 2, 2, dtype=dtype, requires_grad=True)
            y = F.conv2d(x, w, torch.zeros(1, dtype=dtype))
        elif op == "max_pool2d":
            y = F.max_pool2d(x, 2, stride=1, padding=1)
        else:
            y = F.avg_pool2d(x, 2, stride=1, padding=1)
        torch.autograd.grad(y, [x], grad_outputs=torch.ones_like(y))
    except (RuntimeError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"torch {torch.__version__} rejects {op} in {dtype} on this device: {first}"
    return None
