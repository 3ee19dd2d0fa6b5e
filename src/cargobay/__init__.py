"""cargobay: a private container registry, a drop-in replacement for registry:2."""

__version__ = "0.1.0"
