"""Errors of :mod:`retcore.explain` (all :class:`retcore.errors.RetcoreError`)."""
from __future__ import annotations

from retcore.errors import RetcoreError
from retcore.registry import UnknownNameError

__all__ = ["ExplainError", "TargetError", "UnknownMethodError", "UnsupportedMethodError", "UnsupportedModelError"]


class ExplainError(RetcoreError, ValueError):
    """An explanation request that cannot work (bad images, bad ``start_layer``...)."""


class UnsupportedModelError(ExplainError):
    """The model is not a timm ``VisionTransformer`` built from the supported parts."""


class UnsupportedMethodError(UnsupportedModelError):
    """A supported ViT that one explanation method cannot explain (the message says why);
    ask first with :func:`retcore.explain.explain_support`."""


class TargetError(ExplainError):
    """A target class that is out of range, or a target tensor of the wrong shape."""


class UnknownMethodError(UnknownNameError, ExplainError):
    """An explanation method name that is not registered (the message lists the names)."""
