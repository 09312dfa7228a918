"""torch as a backend: ``torch.nn.functional`` for every op of the table, ranks 1 to 3.

A per-op table behind :class:`~crosscheck.backends.driver.TableBackend`: the driver
moves channels first (data ``(N, C, *spatial)``, weights ``(C_out, C_in/groups, *k)``,
which for a transposed conv's canonical ``(*k, C_out/groups, C_in)`` is torch's own
``(C_in, C_out/groups, *k)``), casts to the case's dtype and reads back; gradients
come from ``torch.autograd.grad`` with ``grad_outputs=dy``, forward-mode derivatives
from ``torch.func.jvp`` and second-order ones from a second ``torch.autograd.grad``
through the first (``create_graph=True``). This module is an
independent oracle: padding and output sizes come from :mod:`crosscheck.geometry`,
never from refcnn, so a geometry bug in refcnn shows up as a disagreement.

How each padding form reaches torch:

* conv: symmetric pads and ``'valid'`` natively; ``'same'`` natively only with
  stride 1 (torch rejects it otherwise, pytorch#67551); strided ``'same'``,
  ``'same_lower'`` and asymmetric pads as explicit zero padding (``F.pad``), then
  ``padding=0``.
* transposed conv: ``output_padding`` natively. Asymmetric pads ``(a, b)`` run with
  ``padding=min(a, b)`` and crop the ``|a - b|`` extra cells from the side with the
  larger pad: a transposed conv's padding only crops its full output, so this is the
  same computation. torch has no ``'same'`` for it (unsupported).
* pools: symmetric pads within torch's limit ``pad <= kernel // 2`` (torch counts the
  undilated kernel, pytorch#7541) natively, ceil_mode included. Anything else only
  where an explicit ``F.pad`` gives the same windows: max pool with ``-inf``
  padding, or average pool with ``count_include_pad=True`` and zero padding, both
  only without ceil_mode (ceil_mode's last-window rule depends on where the explicit
  padding ends). An emulated max pool's indices are mapped back from the padded
  plane to the input plane.
* average pooling has no dilation in torch; 1-D average pooling has no
  ``divisor_override``, so that case runs as 2-D pooling over a unit axis.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from crosscheck import geometry
from crosscheck.backends.driver import OpImpl, TableBackend
from crosscheck.cases import Case

_TORCH_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _fn(name: str, rank: int) -> Callable:
    return getattr(F, f"{name}{rank}d")


def _torch_pad(pads) -> list[int]:
    """Per-side pairs ``((before, after), ...)`` in ``F.pad`` order (last axis first)."""
    return [p for pair in reversed(pads) for p in pair]


def _symmetric(pads) -> tuple[int, ...] | None:
    """torch's ``padding=(p, ...)`` when every axis is padded equally on both sides."""
    return tuple(a for a, _ in pads) if all(a == b for a, b in pads) else None


# ---- conv and transposed conv --------------------------------------------------------------------
def _conv(case: Case, x, w, b):
    common = dict(stride=case.stride, dilation=case.dilation, groups=case.groups)
    conv = _fn("conv", case.rank)
    if case.padding == "valid" or (case.padding == "same" and set(case.stride) == {1}):
        with warnings.catch_warnings():
            # torch warns that 'same' with an even kernel copies the input: expected.
            warnings.filterwarnings("ignore", message="Using padding='same'")
            return conv(x, w, b, padding=case.padding, **common)
    pads = geometry.explicit_pads(case)
    sym = _symmetric(pads)
    if sym is not None:
        return conv(x, w, b, padding=sym, **common)
    return conv(F.pad(x, _torch_pad(pads), value=0.0), w, b, padding=0, **common)


def _conv_transpose(case: Case, x, w, b):
    pads = geometry.explicit_pads(case)
    low = tuple(min(a, c) for a, c in pads)
    y = _fn("conv_transpose", case.rank)(
        x, w, b, stride=case.stride, padding=low, output_padding=case.output_padding,
        groups=case.groups, dilation=case.dilation)
    if all(a == c for a, c in pads):
        return y
    # torch computes the full output cropped by ``low`` on both sides; crop the rest.
    out = geometry.out_spatial(case)
    index = (slice(None), slice(None)) + tuple(
        slice(a - m, a - m + n) for (a, _), m, n in zip(pads, low, out))
    return y[index]


def _conv_transpose_unsupported(case: Case) -> str | None:
    if case.padding in ("same", "same_lower"):
        return f"torch conv_transpose{case.rank}d has no padding={case.padding!r}"
    return None


# ---- pooling -------------------------------------------------------------------------------------
def _pool_native(case: Case, pads) -> tuple[int, ...] | None:
    """torch's own ``padding=`` when its pool check (symmetric, ``pad <= kernel // 2``) passes."""
    sym = _symmetric(pads)
    if sym is not None and all(p <= k // 2 for p, k in zip(sym, case.kernel)):
        return sym
    return None


def _pool_unsupported(case: Case) -> str | None:
    if case.family == "avg_pool" and set(case.dilation) != {1}:
        return f"torch avg_pool{case.rank}d has no dilation (dilation={case.dilation})"
    pads = geometry.explicit_pads(case)
    if _pool_native(case, pads) is not None:
        return None
    why = (f"torch pooling needs symmetric pads <= kernel//2 (pads={pads}, "
           f"kernel={case.kernel})")
    if case.ceil_mode:
        return why + "; no exact F.pad emulation with ceil_mode"
    if case.family == "avg_pool" and not case.count_include_pad:
        return why + "; no exact F.pad emulation with count_include_pad=False"
    if _window_without_input(case, pads):
        return why + "; a window lies wholly in the padding, which only the F.pad emulation allows"
    if case.family == "max_pool" and case.inputs == "neginf":
        # A window whose real cells are all -inf: torch's own padding picks its first real
        # cell (index and gradient), -inf padding picks a padding cell.
        return why + "; the -inf F.pad emulation differs from torch in all -inf windows"
    return None


def _window_without_input(case: Case, pads) -> bool:
    """Whether some pooling window covers no input cell (on some axis, all its taps are padding)."""
    for size, k, s, d, p in zip(case.spatial, case.kernel, case.stride, case.dilation, pads):
        for o in range(geometry.pool_out(size, k, s, d, p, case.ceil_mode)):
            if not any(0 <= o * s + t * d - p[0] < size for t in range(k)):
                return True
    return False


def _max_pool(case: Case, x, w=None, b=None):
    pads = geometry.explicit_pads(case)
    native = _pool_native(case, pads)
    padded = x if native is not None else F.pad(x, _torch_pad(pads), value=-math.inf)
    y, idx = _fn("max_pool", case.rank)(
        padded, case.kernel, stride=case.stride, padding=native or 0, dilation=case.dilation,
        ceil_mode=case.ceil_mode, return_indices=True)
    if not case.return_indices:
        return y
    if native is None:
        idx = _unpad_index(idx, padded.shape[2:], x.shape[2:], [a for a, _ in pads])
    return y, idx


def _unpad_index(idx, padded_shape, shape, before):
    """Flat indices into the padded plane as flat indices into the input plane."""
    flat = torch.zeros_like(idx)
    for axis in range(len(shape)):
        stride = math.prod(padded_shape[axis + 1:])
        coord = (idx // stride) % padded_shape[axis] - before[axis]
        flat = flat * shape[axis] + coord
    return flat


def _avg_pool(case: Case, x, w=None, b=None):
    pads = geometry.explicit_pads(case)
    native = _pool_native(case, pads)
    if native is None:
        x = F.pad(x, _torch_pad(pads), value=0.0)
    kernel, stride, padding = case.kernel, case.stride, native or (0,) * case.rank
    opts = dict(ceil_mode=case.ceil_mode, count_include_pad=case.count_include_pad)
    if case.divisor_override is not None and case.rank == 1:
        # avg_pool1d has no divisor_override: the same pooling over a unit axis in 2-D.
        y = F.avg_pool2d(x.unsqueeze(-2), (1, *kernel), stride=(1, *stride),
                         padding=(0, *padding), divisor_override=case.divisor_override, **opts)
        return y.squeeze(-2)
    if case.divisor_override is not None:
        opts["divisor_override"] = case.divisor_override
    return _fn("avg_pool", case.rank)(x, kernel, stride=stride, padding=padding, **opts)


def _adaptive_avg_pool(case: Case, x, w=None, b=None):
    return _fn("adaptive_avg_pool", case.rank)(x, case.output_size)


def _adaptive_max_pool(case: Case, x, w=None, b=None):
    return _fn("adaptive_max_pool", case.rank)(x, case.output_size,
                                                return_indices=case.return_indices)


#: One tiny case per family, run forward and backward to learn which dtypes torch accepts.
_PROBES = {
    "conv": dict(c_out=1, kernel=2),
    "conv_transpose": dict(c_out=1, kernel=2, stride=2),
    "max_pool": dict(kernel=2, stride=1, padding=1, return_indices=True),
    "avg_pool": dict(kernel=2, stride=1, padding=1, divisor_override=3),
    "adaptive_avg_pool": dict(output_size=3),
    "adaptive_max_pool": dict(output_size=3, return_indices=True),
}


def _device():
    """The device ``crosscheck run --device`` asks for (:data:`~crosscheck.backends.DEVICE_ENV`),
    else torch's default device; :class:`~crosscheck.backends.DeviceUnavailable` if absent."""
    from crosscheck.backends import DeviceUnavailable, requested_device

    wanted = requested_device()
    if wanted is None:
        return torch.get_default_device()
    kind, index = wanted
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else \
            "a CPU-only build (torch.version.cuda is None)"
        raise DeviceUnavailable(
            f"--device cuda: torch {torch.__version__} sees no CUDA device "
            f"(torch.cuda.is_available() is False; this torch is {build}): run on a machine "
            "with an NVIDIA GPU and a CUDA build of torch")
    if index is not None and index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"--device cuda:{index}: torch sees only "
                                f"{torch.cuda.device_count()} CUDA devices")
    return torch.device("cuda" if index is None else f"cuda:{index}")


def _cuda_settings(device) -> dict:
    """On a CUDA device: which GPU, and the cuDNN settings that change float32 results."""
    if getattr(device, "type", None) != "cuda":
        return {}
    return {"device_name": torch.cuda.get_device_name(device),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "cuda.matmul.allow_fp16_reduced_precision_reduction":
                torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
            "cuda.matmul.allow_bf16_reduced_precision_reduction":
                torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
            # Set, it overrides every TF32 switch of cuBLAS and cuDNN.
            "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE")}


class TorchBackend(TableBackend):
    """``torch.nn.functional`` on torch's default device, channels first."""

    name = "torch"
    channels_first = True
    dtypes = _TORCH_DTYPES
    ops = {
        "conv": OpImpl(_conv),
        "conv_transpose": OpImpl(_conv_transpose, unsupported=_conv_transpose_unsupported),
        "max_pool": OpImpl(_max_pool, unsupported=_pool_unsupported),
        "avg_pool": OpImpl(_avg_pool, unsupported=_pool_unsupported),
        "adaptive_avg_pool": OpImpl(_adaptive_avg_pool),
        "adaptive_max_pool": OpImpl(_adaptive_max_pool),
    }

    def __init__(self):
        # float32 must mean float32: no TF32 in cuDNN convolutions or matmuls (irrelevant
        # on CPU, set anyway so a GPU run is comparable; recorded by settings()).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        self.device = _device()
        self._dtype_reasons: dict[tuple[str, str, str], str | None] = {}

    def version(self) -> str:
        return torch.__version__

    def settings(self) -> dict:
        return {
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "num_threads": torch.get_num_threads(),
            "device": str(self.device),
            **_cuda_settings(self.device),
        }

    # ---- arrays and gradients ------------------------------------------------------------------
    def to_framework(self, a: np.ndarray, dtype):
        # A copy: torch.from_numpy would alias the caller's (read-only) array. The values
        # are exact in ``dtype`` (Inputs guarantees it), so the cast is exact.
        return torch.from_numpy(np.array(a, dtype=np.float64, copy=True)).to(
            device=self.device, dtype=dtype)

    def to_numpy(self, t) -> np.ndarray:
        t = t.detach()
        if t.is_floating_point():
            t = t.to(torch.float64)
        return t.cpu().numpy()

    def vjp(self, fn, primals, cotangent):
        primals = [p.detach().requires_grad_(True) for p in primals]
        with torch.enable_grad():
            y = fn(*primals)
        grads = torch.autograd.grad(y, primals, grad_outputs=cotangent, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(primals, grads)]

    def jvp(self, fn, primals, tangents):
        with warnings.catch_warnings():
            # The first forward-mode call loads torch's JVP decompositions through
            # torch.jit.script, which warns that it is deprecated: torch's own business.
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
            return torch.func.jvp(fn, tuple(primals), tuple(tangents))[1]

    def double_vjp(self, fn, primals, cotangent, cotangents):
        primals = [p.detach().requires_grad_(True) for p in primals]
        dy = cotangent.detach().requires_grad_(True)
        with torch.enable_grad():
            first = torch.autograd.grad(fn(*primals), primals, grad_outputs=dy,
                                        create_graph=True, allow_unused=True)
            # A first-order gradient that is None or constant adds nothing to <grads, g>.
            used = [(g, c) for g, c in zip(first, cotangents) if g is not None and
                    g.requires_grad]
            second = torch.autograd.grad([g for g, _ in used], [dy, *primals],
                                         grad_outputs=[c for _, c in used],
                                         allow_unused=True) if used else [None] * (
                                             1 + len(primals))
        second = [torch.zeros_like(p) if g is None else g.detach()
                  for p, g in zip([dy, *primals], second)]
        return second[0], second[1:]

    # ---- dtypes torch refuses ------------------------------------------------------------------
    def unsupported_dtype(self, case: Case) -> str | None:
        reason = super().unsupported_dtype(case)
        if reason is None:
            key = (case.op, case.dtype, case.direction)
            if key not in self._dtype_reasons:
                self._dtype_reasons[key] = self._probe(case)
            reason = self._dtype_reasons[key]
        return reason

    def _probe(self, case: Case) -> str | None:
        """Run a tiny case of ``case``'s op, dtype and direction: why torch refuses it, or None."""
        probe = Case.of(case.family, case.rank, case.direction, n=1, spatial=(4,) * case.rank,
                        c_in=1, dtype=case.dtype, **_PROBES[case.family])
        dtype = self.dtypes[case.dtype]
        x = torch.ones((1, 1, *probe.spatial), dtype=dtype, device=self.device)
        shape = probe.entry.weight_shape(probe)  # (*k, 1, 1): channels first is (1, 1, *k)
        w = None if shape is None else torch.ones((1, 1, *shape[:-2]), dtype=dtype,
                                                  device=self.device)
        b = None if shape is None else torch.zeros(1, dtype=dtype, device=self.device)
        dy = torch.ones((1, 1, *probe.out_spatial()), dtype=dtype, device=self.device)
        arrays = {"x": x, "w": w, "b": b, "dy": dy}
        # Tangents and second-order cotangents of the primals' shapes (unused elsewhere).
        for prefix in ("t", "g"):
            arrays.update({prefix + r: None if a is None else torch.ones_like(a)
                           for r, a in (("x", x), ("w", w), ("b", b))})
        try:
            self.compute(probe, arrays)
        except (RuntimeError, NotImplementedError) as exc:
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            return (f"torch {torch.__version__} rejects {case.op} {case.direction} in "
                    f"{case.dtype} on {self.device}: {first}")
        return None
