"""Unlearning methods: the base class ``Method``, the registry, and one operation (``unlearn``).

A new method subclasses ``Method`` (or a built-in), declares its ``Params`` and is registered
with ``register``; ``get_method(name)`` returns a registered class.
"""

from .registry import METHODS, Method, MethodParams, Step, get_method, make_method, register

__all__ = ["METHODS", "Method", "MethodParams", "Step", "get_method", "make_method", "register"]
