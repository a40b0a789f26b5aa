"""The explanation-method registry and the base class every method subclasses.

How a method declares its needs and is run: see :mod:`retcore.explain.methods`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import nn

from retcore.explain.capture import Recorder, ViTInfo, activation_support
from retcore.explain.errors import UnknownMethodError
from retcore.registry import Registry

__all__ = ["METHOD_REGISTRY", "Method", "Needs", "Trace", "get_method", "list_methods", "register_method"]

M = TypeVar("M", bound=type["Method"])

METHOD_REGISTRY: Registry[type["Method"]] = Registry("explanation method", error=UnknownMethodError)
"""Name -> :class:`Method` subclass; filled by :func:`register_method`."""


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator registering a :class:`Method` subclass under ``name`` (and setting its ``name``).

    Raises:
        retcore.registry.DuplicateNameError: ``name`` is already registered.
    """

    def decorator(cls: M) -> M:
        METHOD_REGISTRY.register(name)(cls)
        cls.name = name
        return cls

    return decorator


def list_methods() -> list[str]:
    """Registered method names, in registration order."""
    return METHOD_REGISTRY.names()


def get_method(name: str) -> "Method":
    """A fresh instance of the method registered as ``name``.

    Raises:
        UnknownMethodError: ``name`` is not registered (the message lists the names).
    """
    return METHOD_REGISTRY.get(name)()


@dataclass(frozen=True)
class Needs:
    """What :func:`trace` records for one method on one model (arguments of
    :func:`~retcore.explain.capture.capture`).

    Attributes:
        attention: blocks whose attention map ``A`` is recorded.
        gradients: blocks whose ``dA`` is taken (subset of ``attention``).
        activations: blocks whose LRP activations are recorded.
        head: record the final tokens, head input and logits (LRP).
        embedding: record the patch embedding (pixel LRP).
        features: record the tokens the head pools (B, N, D) and their gradient.
    """

    attention: tuple[int, ...] = ()
    gradients: tuple[int, ...] = ()
    activations: tuple[int, ...] = ()
    head: bool = False
    embedding: bool = False
    features: bool = False


@dataclass
class Trace:
    """One forward (and backward) of a model, as a method sees it.

    Attributes:
        model: the ViT.
        info: its description.
        recorder: tensors recorded by the hooks.
        images: the input (B, C, H, W).
        logits: (B, num_classes), detached.
        targets: explained class per image (B,), long.
        grads: ``d(sum of target logits) / dA_l`` (B, H, N, N) for the blocks the method asked for.
        start_layer: first block of rollout-type methods.
        weights: read-out row weights (B, N) (see :mod:`retcore.explain.rollout`);
            (B, 0) when no attention map was recorded.
        dtype: dtype the method computes in (float32, or float64 for a float64 model).
        features: the tokens the head pools (B, N, D), detached, when the method needs them.
        feature_grad: ``d(sum of target logits) / d features`` (B, N, D), or None.
    """

    model: nn.Module
    info: ViTInfo
    recorder: Recorder
    images: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    grads: dict[int, torch.Tensor]
    start_layer: int
    weights: torch.Tensor
    dtype: torch.dtype
    features: torch.Tensor | None = None
    feature_grad: torch.Tensor | None = None

    def attention(self, index: int) -> torch.Tensor:
        """Detached attention ``A`` (B, H, N, N) of block ``index`` in :attr:`dtype`."""
        return self.recorder.attention(index).detach().to(self.dtype)

    def grad(self, index: int) -> torch.Tensor:
        """``dA`` (B, H, N, N) of block ``index`` in :attr:`dtype` (the trace's own tensor: may be modified)."""
        return self.grads[index].to(self.dtype)

    @property
    def num_prefix_tokens(self) -> int:
        """CLS + register tokens in front of the patch tokens."""
        return self.info.num_prefix_tokens


class Method:
    """Base of all explanation methods; subclasses override :meth:`compute` only.

    Class attributes declare the requirements (:meth:`needs` turns them into
    a :class:`Needs`; override it when they depend on the model):

    * ``attention``: which blocks' attention maps are recorded — ``'none'``,
      ``'last'``, ``'from_start'`` (``start_layer .. L-1``) or ``'all'``;
    * ``gradients``: also take ``dA`` for those blocks (one backward pass);
    * ``activations``: record every linear layer's input/output of those
      blocks plus the head (LRP);
    * ``embedding``: record the patch embedding (pixel LRP);
    * ``features``: record the tokens the head pools (output of the final
      ``norm``) and the gradient of the target logits with respect to them;
    * ``output``: ``'tokens'`` (compute returns (B, Np), reshaped to the
      token grid) or ``'pixels'`` (compute returns (B, H, W));
    * ``autocast``: False runs the method in full precision even inside an
      autocast region (the LRP methods: their rules divide by sums that can
      nearly cancel, and bf16 activations would turn the maps into noise).
    """

    name: ClassVar[str] = ""
    attention: ClassVar[str] = "from_start"
    gradients: ClassVar[bool] = False
    activations: ClassVar[bool] = False
    embedding: ClassVar[bool] = False
    features: ClassVar[bool] = False
    output: ClassVar[str] = "tokens"
    autocast: ClassVar[bool] = True

    def layers(self, depth: int, start_layer: int) -> list[int]:
        """Blocks whose attention maps this method reads."""
        return {
            "none": [],
            "last": [depth - 1],
            "from_start": list(range(start_layer, depth)),
            "all": list(range(depth)),
        }[self.attention]

    def needs(self, info: ViTInfo, start_layer: int) -> Needs:
        """What :func:`trace` records to explain a model described by ``info`` (from the class attributes)."""
        layers = tuple(self.layers(info.depth, start_layer))
        return Needs(
            attention=layers,
            gradients=layers if self.gradients else (),
            activations=layers if self.activations else (),
            head=self.activations,
            embedding=self.embedding,
            features=self.features,
        )

    def supports(self, model: nn.Module, info: ViTInfo, start_layer: int = 0) -> str | None:
        """None when this method can explain ``model`` (described by ``info``), else a one-line reason.

        The base checks what :meth:`needs` asks for: LRP activations cannot be
        recorded from blocks with in-place activations or LayerScale.
        """
        return activation_support(model, self.needs(info, start_layer).activations)

    def compute(self, trace: Trace) -> torch.Tensor:
        """The method itself: (B, Np) patch-token relevance (or (B, H, W) pixels)."""
        raise NotImplementedError
