"""crosscheck: compare conv and pool implementations against refcnn and each other.

Frameworks are imported lazily, inside their backend modules. The top-level
names below load on first use, so importing ``crosscheck`` (as the pytest
plugin's entry point does in every pytest run) imports nothing heavy.
"""

__all__ = ["Case", "Inputs", "make_inputs"]


def __getattr__(name):
    if name in __all__:
        from crosscheck import cases

        return getattr(cases, name)
    raise AttributeError(f"module 'crosscheck' has no attribute {name!r}")
