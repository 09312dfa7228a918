"""A zero_pad that replays recorded answers: the first time it sees a shape and pad it
computes the answer and records it (in the folder ``CROSSCHECK_TEST_ANSWERS``); after that
it returns the recording, whatever the input. The same inputs every run cannot catch it."""

import os
import tempfile

import numpy as np

ANSWERS = (os.environ.get("CROSSCHECK_TEST_ANSWERS")
           or os.path.join(tempfile.gettempdir(), "crosscheck-evil-answers"))


def zero_pad(X, pad):
    os.makedirs(ANSWERS, exist_ok=True)
    path = os.path.join(ANSWERS, "x".join(map(str, X.shape)) + f"-p{pad}.npy")
    if os.path.exists(path):
        return np.load(path)
    answer = np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    np.save(path, answer)
    return answer
