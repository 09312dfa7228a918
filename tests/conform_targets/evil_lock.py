"""A target that takes a lock file at import and refuses to import while it exists; the
lock goes at a clean exit only, so once its conv_forward hangs and is killed, importing it
again fails. zero_pad and pool_forward are right."""

import atexit
import os
import tempfile
import time

LOCK = (os.environ.get("CROSSCHECK_TEST_LOCK")
        or os.path.join(tempfile.gettempdir(), "crosscheck-evil-lock"))
if os.path.exists(LOCK):
    raise RuntimeError(f"{LOCK} is held by another process")
with open(LOCK, "w") as f:
    f.write(str(os.getpid()))
atexit.register(os.remove, LOCK)

from notebook_loops import NotebookCNN  # noqa: E402

_impl = NotebookCNN()
zero_pad = _impl.zero_pad
pool_forward = _impl.pool_forward


def conv_forward(A_prev, W, b, hparameters):
    while True:
        time.sleep(0.05)
