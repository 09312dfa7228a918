"""crosscheck: compare conv and pool implementations against refcnn and each other.

Frameworks are imported lazily, inside their backend modules; importing
``crosscheck`` loads only NumPy and refcnn.
"""

from crosscheck.cases import Case, Inputs, make_inputs

__all__ = ["Case", "Inputs", "make_inputs"]
