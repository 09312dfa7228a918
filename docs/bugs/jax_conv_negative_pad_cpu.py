"""XLA:CPU reads out of bounds in a convolution with a negative (cropping) pad: JAX's conv gradient.

JAX's input gradient of a conv whose pad before exceeds ``dilation * (k - 1)`` is itself a conv
with a negative low pad (a crop), e.g. ``((0, 0), (-1, 1))``. On CPU in float32 (and float16,
bfloat16) that conv returns garbage in the cells next to the crop; float64 is right. Upstream:
openxla/xla#48713 (open; fix proposed in openxla/xla PR #48748).

Run: python docs/bugs/jax_conv_negative_pad_cpu.py  (exits 1 while the bug is there)
"""

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)

from jax import lax  # noqa: E402

rng = np.random.default_rng(0)
x = rng.standard_normal((1, 4, 10, 3))
w = rng.standard_normal((2, 2, 3, 2))
pads = ((0, 0), (-1, 1))


def conv(dtype):
    y = lax.conv_general_dilated(x.astype(dtype), w.astype(dtype), (1, 1), pads,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                 precision=lax.Precision.HIGHEST)
    return np.asarray(y, dtype=np.float64)


exact, single = conv(np.float64), conv(np.float32)
error = np.abs(single - exact).max()
print(f"jax {jax.__version__}: max |float32 - float64| = {error:.3g} (float32 rounding: ~1e-6)")
raise SystemExit(1 if error > 1e-4 else 0)
