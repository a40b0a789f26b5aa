"""Running a model for a method: support checks, explained classes and the shared forward/backward.

:func:`trace` runs the model once under
:func:`retcore.explain.capture.capture` (and, if needed, one backward of the
target logits to the attention maps / pooled tokens, with no parameter
gradients) and yields the :class:`~retcore.explain.methods.base.Trace` a
method computes from.

Whether a method can explain a model at all is asked with
:func:`explain_support` (None, or a one-line reason); :func:`trace` (hence
:func:`retcore.explain.relevance`) raises
:class:`~retcore.explain.errors.UnsupportedMethodError` with that reason
instead of computing maps that would be empty or wrong.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from retcore.explain.capture import ViTInfo, capture, inspect_vit
from retcore.explain.errors import ExplainError, TargetError, UnsupportedMethodError, UnsupportedModelError
from retcore.explain.gae import target_gradients
from retcore.explain.methods.base import Method, Trace, get_method
from retcore.explain.rollout import READOUTS, default_readout, readout_weights

__all__ = ["explain_support", "resolve_targets", "trace"]


def explain_support(model: nn.Module, method: str | Method, start_layer: int = 0) -> str | None:
    """Can ``method`` explain ``model``? None if it can, else a one-line reason to show the user.

    Checks the model (a timm ViT of the supported parts, see
    :func:`~retcore.explain.capture.inspect_vit`) and what the method needs
    from it (:meth:`Method.supports`); runs nothing. :func:`retcore.explain.relevance`
    raises :class:`~retcore.explain.errors.UnsupportedModelError` /
    :class:`~retcore.explain.errors.UnsupportedMethodError` with the same reason.

    Args:
        model: the model to explain.
        method: a registered name or a :class:`Method` instance.
        start_layer: first block of rollout-type methods (decides which blocks they read).

    Returns:
        None (supported) or the reason, e.g. ``"block 0 of model VisionTransformer uses an in-place
        activation or LayerScale, which overwrites the activations LRP needs: rebuild it without
        inplace=True"``.

    Raises:
        UnknownMethodError: ``method`` is a name that is not registered.
    """
    m = get_method(method) if isinstance(method, str) else method
    try:
        info = inspect_vit(model)
    except UnsupportedModelError as exc:
        return str(exc)
    return _start_layer_problem(start_layer, info.depth) or m.supports(model, info, start_layer)


def _start_layer_problem(start_layer: int, depth: int) -> str | None:
    if 0 <= start_layer < depth:
        return None
    return f"start_layer {start_layer} is out of range for a model with {depth} blocks: use 0..{depth - 1}"


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
        UnsupportedMethodError: ``method`` cannot explain ``model`` (see :func:`explain_support`).
        TargetError: see :func:`resolve_targets`.
    """
    problem = _start_layer_problem(start_layer, info.depth)
    if problem is not None:
        raise ExplainError(problem)
    batch = images.shape[0]
    device = images.device
    explicit = resolve_targets(target, None, batch, info.num_classes, device)
    kind = readout or default_readout(info)
    if kind not in READOUTS or (kind == "cls" and not info.has_class_token):
        readout_weights(info, kind, 1, info.num_prefix_tokens + 1, dtype=torch.float32, device=device)  # raises
    reason = method.supports(model, info, start_layer)
    if reason is not None:
        raise UnsupportedMethodError(reason)
    needs = method.needs(info, start_layer)
    layers = needs.attention
    differentiate = bool(needs.gradients) or needs.features
    dtype = _compute_dtype(model)
    with capture(
        model,
        attention_layers=layers,
        grad_layers=needs.gradients,
        activation_layers=needs.activations,
        head=needs.head,
        embedding=needs.embedding,
        features=needs.features,
    ) as rec:
        with torch.set_grad_enabled(differentiate):
            logits = model(images)
        targets = explicit if explicit is not None else resolve_targets(None, logits, batch, info.num_classes, device)
        assert targets is not None
        grads: dict[int, torch.Tensor] = {}
        features = feature_grad = None
        if differentiate:
            wrt = [rec.attention(i) for i in needs.gradients] + ([rec.features()] if needs.features else [])
            values = target_gradients(logits, targets, wrt)
            grads = dict(zip(needs.gradients, values[:len(needs.gradients)], strict=True))
            if needs.features:
                features, feature_grad = rec.features().detach(), values[-1]
        n_tokens = rec.attention(layers[0]).shape[-1] if layers else info.num_prefix_tokens
        weights = readout_weights(info, kind, batch, n_tokens, dtype=dtype, device=device) if layers else \
            torch.empty(batch, 0, dtype=dtype, device=device)
        yield Trace(model=model, info=info, recorder=rec, images=images, logits=logits.detach(),
                    targets=targets, grads=grads, start_layer=start_layer, weights=weights, dtype=dtype,
                    features=features, feature_grad=feature_grad)
