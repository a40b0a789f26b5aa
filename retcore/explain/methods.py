"""Explanation methods: the registry, the shared forward/backward, the attention baselines.

A method is a small :class:`Method` subclass registered with
``@register_method(name)``. Class attributes say what it needs (attention
maps of which blocks, their gradients, the LRP activations); :func:`trace`
runs the model once under :func:`retcore.explain.capture.capture` (and, if
needed, one backward of the target logits to the attention maps, with no
parameter gradients) and hands a :class:`Trace` to the single override point
:meth:`Method.compute`, which returns one value per patch token (B, Np) — or
per pixel (B, H, W) for methods with ``output = 'pixels'``.

Methods here (the LRP ones live in :mod:`retcore.explain.lrp`):

* ``rollout`` — Abnar & Zuidema (2020) attention rollout, as in Chefer's
  baseline: mean over heads, ``+ I``, row-normalise, product over blocks
  from ``start_layer``, read-out.
* ``attention`` — raw attention of the last block, mean over heads, read-out.
* ``gradcam`` — Grad-CAM as Chefer's baseline defines it for ViTs: channels
  are the last block's attention heads, the activation is the read-out row
  of each head's attention ``A_h`` (patch columns), the weight of a head is
  the mean of the read-out row of its gradient ``dA_h``; map =
  ``clamp(mean_h(w_h * A_h), 0)``. (Grad-CAM on the last block's output
  tokens would be zero for a CLS head: the CLS read-out gives the patch
  tokens of the last block no gradient.)
* ``gae`` — Chefer, Gur, Wolf (ICCV 2021) generic attention explainability:
  ``R = I``; for each block from ``start_layer``, ``R += mean_h(clamp(dA * A, 0)) @ R``.

Read-outs (:mod:`retcore.explain.rollout`): the CLS row for CLS-token heads,
the mean of the patch-token rows for average-pool heads.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import nn

from retcore.explain.capture import Recorder, ViTInfo, capture
from retcore.explain.errors import ExplainError, TargetError, UnknownMethodError
from retcore.explain.rollout import READOUTS, readout_weights, rollout_readout

__all__ = [
    "METHOD_REGISTRY",
    "AttentionMethod",
    "GAEMethod",
    "GradCAMMethod",
    "Method",
    "RolloutMethod",
    "Trace",
    "get_method",
    "list_methods",
    "register_method",
    "resolve_targets",
    "trace",
]

M = TypeVar("M", bound=type["Method"])

METHOD_REGISTRY: dict[str, type["Method"]] = {}
"""Name -> :class:`Method` subclass; filled by :func:`register_method`."""


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator registering a :class:`Method` subclass under ``name``."""

    def decorator(cls: M) -> M:
        if name in METHOD_REGISTRY and METHOD_REGISTRY[name] is not cls:
            raise ValueError(f"explanation method {name!r} is already registered")
        cls.name = name
        METHOD_REGISTRY[name] = cls
        return cls

    return decorator


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    return sorted(METHOD_REGISTRY)


def get_method(name: str) -> "Method":
    """A fresh instance of the method registered as ``name``.

    Raises:
        UnknownMethodError: ``name`` is not registered (the message lists the names).
    """
    if name not in METHOD_REGISTRY:
        raise UnknownMethodError(f"unknown explanation method {name!r}: choose one of {', '.join(list_methods())}")
    return METHOD_REGISTRY[name]()


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
        weights: read-out row weights (B, N) (see :mod:`retcore.explain.rollout`).
        dtype: dtype the method computes in (float32, or float64 for a float64 model).
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

    Class attributes declare the requirements:

    * ``attention``: which blocks' attention maps are recorded — ``'none'``,
      ``'last'``, ``'from_start'`` (``start_layer .. L-1``) or ``'all'``;
    * ``gradients``: also take ``dA`` for those blocks (one backward pass);
    * ``activations``: record every linear layer's input/output of those
      blocks plus the head (LRP);
    * ``embedding``: record the patch embedding (pixel LRP);
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

    def compute(self, trace: Trace) -> torch.Tensor:
        """The method itself: (B, Np) patch-token relevance (or (B, H, W) pixels)."""
        raise NotImplementedError


def _compute_dtype(model: nn.Module) -> torch.dtype:
    param = next(model.parameters())
    return torch.float64 if param.dtype == torch.float64 else torch.float32


def resolve_targets(target: int | torch.Tensor | list[int] | None, logits: torch.Tensor | None, batch: int,
                    num_classes: int, device: torch.device) -> torch.Tensor | None:
    """Explained class per image (B,), long.

    ``None`` -> ``argmax(logits)`` (returns None when ``logits`` is None, i.e.
    before the forward pass); an int -> that class for every image; a
    sequence or tensor of ``B`` ints -> one class per image.

    Raises:
        TargetError: a class outside ``[0, num_classes)``, a non-integer
            target, or a per-image target whose length is not ``B``.
    """
    if target is None:
        return None if logits is None else logits.detach().argmax(-1)
    if isinstance(target, bool):
        raise TargetError(f"target {target!r} is not a class index: pass an int in [0, {num_classes})")
    if isinstance(target, int):
        t = torch.full((batch,), target, dtype=torch.long, device=device)
    else:
        try:
            t = torch.as_tensor(target, device=device)
        except (TypeError, ValueError, RuntimeError):
            raise TargetError(f"target {target!r} is not a class index: pass an int or one int per image") from None
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TargetError(f"target has dtype {t.dtype}: pass integer class indices")
        t = t.long().reshape(-1) if t.ndim == 0 else t.long()
        if t.ndim != 1 or (t.numel() != batch and t.numel() != 1):
            raise TargetError(f"target has shape {tuple(t.shape)}: pass one class per image ({batch},) or an int")
        t = t.expand(batch).clone() if t.numel() == 1 else t
    bad = t[(t < 0) | (t >= num_classes)]
    if bad.numel():
        raise TargetError(
            f"target class {int(bad[0])} is out of range for a model with {num_classes} classes: "
            f"use 0..{num_classes - 1}"
        )
    return t


@contextmanager
def trace(method: Method, model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | list[int] | None,
          start_layer: int, readout: str | None, info: ViTInfo) -> Iterator[Trace]:
    """Context manager: run ``model`` on ``images`` with the hooks ``method`` needs, yield the :class:`Trace`.

    The hooks stay attached (and the model in its explain state) until the
    ``with`` block ends, so ``method.compute`` can run inside it; used by
    :func:`retcore.explain.relevance`. ``images`` must already be on the
    model's device, and ``info`` be ``inspect_vit(model)``.

    Raises:
        ExplainError: ``start_layer`` outside ``[0, depth)``.
        TargetError: see :func:`resolve_targets`.
    """
    depth = info.depth
    if not 0 <= start_layer < depth:
        raise ExplainError(
            f"start_layer {start_layer} is out of range for a model with {depth} blocks: use 0..{depth - 1}"
        )
    batch = images.shape[0]
    device = images.device
    explicit = resolve_targets(target, None, batch, info.num_classes, device)
    kind = readout or ("cls" if info.global_pool == "token" else "mean")
    if kind not in READOUTS or (kind == "cls" and not info.has_class_token):
        readout_weights(info, kind, 1, info.num_prefix_tokens + 1, dtype=torch.float32, device=device)  # raises
    layers = method.layers(depth, start_layer)
    grad_layers = layers if method.gradients else []
    dtype = _compute_dtype(model)
    with capture(
        model,
        attention_layers=layers,
        grad_layers=grad_layers,
        activation_layers=layers if method.activations else [],
        head=method.activations,
        embedding=method.embedding,
    ) as rec:
        with torch.set_grad_enabled(bool(grad_layers)):
            logits = model(images)
        targets = explicit if explicit is not None else resolve_targets(None, logits, batch, info.num_classes, device)
        assert targets is not None
        grads: dict[int, torch.Tensor] = {}
        if grad_layers:
            chosen = logits.gather(1, targets.unsqueeze(1)).sum()
            values = torch.autograd.grad(chosen, [rec.attention(i) for i in grad_layers])
            grads = dict(zip(grad_layers, values, strict=True))
        n_tokens = rec.attention(layers[0]).shape[-1] if layers else info.num_prefix_tokens
        weights = readout_weights(info, kind, batch, n_tokens, dtype=dtype, device=device) if layers else \
            torch.empty(batch, 0, dtype=dtype, device=device)
        yield Trace(model=model, info=info, recorder=rec, images=images, logits=logits.detach(),
                    targets=targets, grads=grads, start_layer=start_layer, weights=weights, dtype=dtype)


def _mean_heads(t: torch.Tensor) -> torch.Tensor:
    return t.mean(1)


@register_method("rollout")
class RolloutMethod(Method):
    """Attention rollout (Abnar & Zuidema 2020): ``prod_l rownorm(mean_h A_l + I)``, read out."""

    attention = "from_start"

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of the normalised rollout from ``start_layer``."""
        depth = trace.info.depth
        mats = (_mean_heads(trace.attention(i)) for i in range(depth - 1, trace.start_layer - 1, -1))
        r = rollout_readout(trace.weights, mats, add_identity=True, normalize=True)
        return r[:, trace.num_prefix_tokens:]


@register_method("attention")
class AttentionMethod(Method):
    """Raw attention of the last block, mean over heads, read out (Chefer's ``last_layer_attn``)."""

    attention = "last"

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of ``mean_h A_{L-1}``."""
        attn = _mean_heads(trace.attention(trace.info.depth - 1).clamp(min=0))
        r = torch.bmm(trace.weights.unsqueeze(1), attn)[:, 0]
        return r[:, trace.num_prefix_tokens:]


@register_method("gradcam")
class GradCAMMethod(Method):
    """Grad-CAM over the heads of the last attention map (Chefer's ViT baseline)."""

    attention = "last"
    gradients = True

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np): ``clamp(mean_h(mean_j(w^T dA_h)[patch] * (w^T A_h)[patch]), 0)``."""
        last = trace.info.depth - 1
        p = trace.num_prefix_tokens
        w = trace.weights[:, None, None, :]  # (B, 1, 1, N)
        rows = torch.matmul(w, trace.attention(last))[:, :, 0, p:]  # (B, H, Np)
        grad_rows = torch.matmul(w, trace.grad(last))[:, :, 0, p:]
        head_weights = grad_rows.mean(-1, keepdim=True)
        return (rows * head_weights).mean(1).clamp(min=0)


@register_method("gae")
class GAEMethod(Method):
    """Generic attention explainability (Chefer ICCV 2021): ``R += mean_h(clamp(dA * A, 0)) @ R``."""

    attention = "from_start"
    gradients = True

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of ``prod_l (I + mean_h clamp(dA_l * A_l, 0)) - I`` from ``start_layer``.

        The identity (residual) path is left out: for a CLS read-out it only reaches the CLS
        column, which is dropped anyway (the authors' maps are unchanged); for the mean read-out
        of average-pool heads it would add the same 1/Np to every patch and, on a trained model
        whose attention terms are small, swamp the map (every zone score ~1.0).
        """
        w = trace.weights.unsqueeze(1)  # (B, 1, N)
        extra = torch.zeros_like(w)  # w^T prod (I + mean_h P_h) - w^T: the part that flows through attention
        for i in range(trace.info.depth - 1, trace.start_layer - 1, -1):
            positive = trace.grad(i).mul_(trace.attention(i)).clamp_(min=0)  # (B, H, N, N)
            extra = extra + torch.matmul((w + extra).unsqueeze(1), positive).mean(1)  # no head mean formed
        return extra[:, 0, trace.num_prefix_tokens:]
