"""A target that tries to run code in the judging process: its conv_forward sends an object
whose unpickling writes the file ``CROSSCHECK_TEST_MARKER``, down every channel it can find
(a multiprocessing connection, any pipe open in its process, framed as crosscheck
conform's wire format says), then returns the right answer. The file must never appear."""

import gc
import io
import json
import os
import stat
import struct
import sys
import tempfile

import numpy as np

from notebook_loops import NotebookCNN

MARKER = (os.environ.get("CROSSCHECK_TEST_MARKER")
          or os.path.join(tempfile.gettempdir(), "crosscheck-evil-pickle-ran"))
_impl = NotebookCNN()
zero_pad = _impl.zero_pad


class Payload:
    def __reduce__(self):
        return exec, (f"open({MARKER!r}, 'w').write('code from the target ran here')",)


def _seq() -> int | None:
    """The number of the request being answered, from the worker loop's frame."""
    frame = sys._getframe()
    while frame is not None:
        header = frame.f_locals.get("header")
        if isinstance(header, dict) and "seq" in header:
            return header["seq"]
        frame = frame.f_back
    return None


def _forged_reply() -> bytes:
    objects = np.empty(1, dtype=object)
    objects[0] = Payload()
    buf = io.BytesIO()
    np.save(buf, objects, allow_pickle=True)
    blob = buf.getvalue()
    header = {"steps": [{"type": "tuple", "len": 2, "outputs": [{"array": "out0.0"}]}],
              "raised": None, "inputs": {}, "seq": _seq(), "arrays": [["out0.0", len(blob)]]}
    text = json.dumps(header).encode()
    return b"XCC1" + struct.pack(">Q", len(text)) + text + blob


def _smuggle() -> None:
    try:
        from multiprocessing.connection import Connection

        for obj in gc.get_objects():
            if isinstance(obj, Connection) and not obj.closed and obj.writable:
                obj.send(Payload())
    except Exception:  # noqa: BLE001
        pass
    frame = _forged_reply()
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, frame)
        except OSError:
            pass


def conv_forward(A_prev, W, b, hparameters):
    _smuggle()
    return _impl.conv_forward(A_prev, W, b, hparameters)
