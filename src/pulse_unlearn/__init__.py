"""PULSE: practical evaluation scenarios for unlearning in LLaVA-style multimodal models.

``run`` and ``load_run`` are the Python API (``api.py``); importing the package loads no torch.
"""

from .api import Run, load_run, run

__all__ = ["Run", "load_run", "run"]
