"""A module that fails to import."""

import numpy as np

raise RuntimeError("this target is broken on purpose")
