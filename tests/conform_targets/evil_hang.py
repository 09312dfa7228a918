"""A conv_forward that starts a child process and then spins forever; zero_pad is right.

Before it spins it writes "WORKER_PID CHILD_PID" to the file named by
``CROSSCHECK_TEST_PIDS``, so a test can check that neither outlives crosscheck conform.
"""

import os
import subprocess

from notebook_loops import NotebookCNN

zero_pad = NotebookCNN().zero_pad


def conv_forward(A_prev, W, b, hparameters):
    child = subprocess.Popen(["sleep", "600"])
    path = os.environ.get("CROSSCHECK_TEST_PIDS")
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        os.replace(path + ".tmp", path)
    while True:  # busy, holding the GIL
        pass
