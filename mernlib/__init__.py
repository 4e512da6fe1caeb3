"""mernlib: a Jupyter-first teaching and reproduction kit for medical named entity recognition
(MER) and normalization (MEN)."""

__version__ = "0.1.0"
