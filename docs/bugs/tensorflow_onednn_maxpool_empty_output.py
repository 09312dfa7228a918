"""TensorFlow's oneDNN max pool kills the process (SIGFPE) when an output axis is empty.

With oneDNN on (TF_ENABLE_ONEDNN_OPTS defaults on in x86 CPU wheels), tf.nn.max_pool in
float32, float16 or bfloat16, 1-D to 3-D, on a non-empty input whose window does not fit
('VALID', window longer than the input along one axis, so that axis of the output has
size 0) dies with a floating-point exception instead of returning the empty output: no
Python exception, the interpreter is gone. float64 (Eigen), TF_ENABLE_ONEDNN_OPTS=0,
tf.nn.max_pool_with_argmax and tf.nn.avg_pool return the empty output. Found by
this suite: max_pool2d-bwd-n2h7w6c2-k2x4-s2x1-pvalid-d2x2-idx-float32-s0 (window reach 7
over a width of 6).

Each call runs in a subprocess, since a failing one takes its interpreter with it.

Run: python docs/bugs/tensorflow_onednn_maxpool_empty_output.py  (exits 1 while the bug is there)
"""

import os
import subprocess
import sys

CALL = """
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import sys
import tensorflow as tf
rank, dtype = int(sys.argv[1]), getattr(tf, sys.argv[2])
spatial = (5, 7, 6)[3 - rank:]
x = tf.ones((2, *spatial, 2), dtype)
y = tf.nn.max_pool(x, [1] * (rank - 1) + [7], 1, "VALID")  # 7 taps along a width of 6
print(tuple(y.shape))
"""

bad = False
for rank in (1, 2, 3):
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        if rank == 3 and dtype == "float64":
            continue  # TensorFlow has no float64 MaxPool3D kernel
        run = subprocess.run([sys.executable, "-c", CALL, str(rank), dtype],
                             capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        died = run.returncode < 0
        bad |= died
        got = (f"killed by signal {-run.returncode}" if died
               else run.stdout.strip() or run.stderr.strip().splitlines()[-1])
        print(f"max_pool{rank}d {dtype}: window 7 over width 6 -> {got}"
              f"{'  WRONG (expected an empty output)' if died else ''}")
raise SystemExit(1 if bad else 0)
