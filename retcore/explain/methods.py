"""Explanation methods: the registry, the shared forward/backward, the attention baselines.

A method is a small :class:`Method` subclass registered with
``@register_method(name)``. Class attributes say what it needs (attention
maps of which blocks, their gradients, the LRP activations, the tokens the
head pools); :meth:`Method.needs` turns them into a :class:`Needs` for one
model (a method whose definition depends on the head overrides it);
:func:`trace` runs the model once under
:func:`retcore.explain.capture.capture` (and, if needed, one backward of the
target logits to the attention maps / pooled tokens, with no parameter
gradients) and hands a :class:`Trace` to the single override point
:meth:`Method.compute`, which returns one value per patch token (B, Np) — or
per pixel (B, H, W) for methods with ``output = 'pixels'``.

Whether a method can explain a model at all is asked with
:func:`explain_support` (None, or a one-line reason); :func:`trace` (hence
:func:`retcore.explain.relevance`) raises
:class:`~retcore.explain.errors.UnsupportedMethodError` with that reason
instead of computing maps that would be empty or wrong.

Methods here (the LRP ones live in :mod:`retcore.explain.lrp`):

* ``rollout`` — Abnar & Zuidema (2020) attention rollout, as in Chefer's
  baseline: mean over heads, ``+ I``, row-normalise, product over blocks
  from ``start_layer``, read-out.
* ``attention`` — raw attention of the last block, mean over heads, read-out.
* ``gradcam`` — Grad-CAM (Selvaraju et al. 2017), chosen by head type:

  - **average-pool heads** (``global_pool='avg'``, RETFound): Grad-CAM on the
    tokens the pool reads, as pytorch-grad-cam applies it to ViTs (patch
    tokens reshaped to the token grid, channels = the embedding dimension):
    ``A`` = output of the final ``norm`` (B, N, D) — an ``Identity`` for
    ``fc_norm`` heads, so the last block's output —, channel weights
    ``w_d = mean over the pooled tokens of d y_c / d A_{t,d}``, map =
    ``ReLU(sum_d w_d A_{t,d})`` for each patch token ``t``. See
    :class:`GradCAMMethod` for why the tokens are taken after the norm.
  - **CLS heads** (``global_pool='token'``): Chefer's ViT baseline, because
    the CLS read-out gives the patch tokens of the last block's output no
    gradient at all (the final norm is per token, the head reads token 0), so
    Grad-CAM on them is identically zero. Channels are the last block's
    attention heads, the activation is the CLS row of each head's attention
    ``A_h`` (patch columns), the weight of a head is the mean of the CLS row
    of its gradient ``dA_h``; map = ``clamp(mean_h(w_h * A_h), 0)``.
* ``gae`` — Chefer, Gur, Wolf (ICCV 2021) generic attention explainability:
  ``R = I``; for each block from ``start_layer``, ``R += mean_h(clamp(dA * A, 0)) @ R``.

Read-outs (:mod:`retcore.explain.rollout`): the CLS row for CLS-token heads,
the mean of the patch-token rows for average-pool heads (Grad-CAM on tokens
needs none).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import nn

from retcore.explain.capture import Recorder, ViTInfo, activation_support, capture, inspect_vit
from retcore.explain.errors import (
    ExplainError,
    TargetError,
    UnknownMethodError,
    UnsupportedMethodError,
    UnsupportedModelError,
)
from retcore.explain.gae import gae_readout, target_gradients
from retcore.explain.rollout import READOUTS, default_readout, readout_weights, rollout_readout
from retcore.registry import Registry

__all__ = [
    "METHOD_REGISTRY",
    "AttentionMethod",
    "GAEMethod",
    "GradCAMMethod",
    "Method",
    "Needs",
    "RolloutMethod",
    "Trace",
    "explain_support",
    "get_method",
    "gradcam_heads",
    "gradcam_tokens",
    "list_methods",
    "register_method",
    "resolve_targets",
    "trace",
]

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


def gradcam_tokens(features: torch.Tensor, grads: torch.Tensor, pooled: slice, prefix: int) -> torch.Tensor:
    """Grad-CAM on tokens: ``ReLU(sum_d w_d A_{t,d})`` with ``w_d = mean_{t in pooled} dA_{t,d}``.

    Args:
        features: token activations ``A`` (B, N, D).
        grads: ``d y / d A`` (B, N, D).
        pooled: the token positions whose gradients are averaged into channel weights.
        prefix: number of CLS/register tokens in front of the patch tokens.

    Returns:
        (B, Np) map over the patch tokens ``prefix:``, >= 0.
    """
    weights = grads[:, pooled].mean(1)  # (B, D)
    return torch.einsum("bnd,bd->bn", features[:, prefix:], weights).clamp(min=0)


def gradcam_heads(attention: torch.Tensor, grads: torch.Tensor, readout: torch.Tensor, prefix: int) -> torch.Tensor:
    """Chefer's Grad-CAM over attention heads: ``clamp(mean_h(mean_j(r^T dA_h)[patch] * (r^T A_h)[patch]), 0)``.

    Args:
        attention: ``A`` of one block (B, H, N, N).
        grads: ``dA`` (B, H, N, N).
        readout: read-out row weights ``r`` (B, N) (the CLS row for CLS heads).
        prefix: number of CLS/register tokens in front of the patch tokens.

    Returns:
        (B, Np) map over the patch tokens, >= 0.
    """
    r = readout[:, None, None, :]  # (B, 1, 1, N)
    rows = torch.matmul(r, attention)[:, :, 0, prefix:]  # (B, H, Np)
    head_weights = torch.matmul(r, grads)[:, :, 0, prefix:].mean(-1, keepdim=True)
    return (rows * head_weights).mean(1).clamp(min=0)


@register_method("gradcam")
class GradCAMMethod(Method):
    """Grad-CAM, on the pooled tokens for average-pool heads, over the last attention heads for CLS heads.

    **Average-pool heads** (``global_pool='avg'``): ``A`` = the tokens the pool
    reads, i.e. the output of the model's final ``norm`` (B, N, D); channel
    weights ``w_d`` = mean over the pooled tokens of ``d y_c / d A_{t,d}``;
    map = ``ReLU(sum_d w_d A_{t,d})`` over the patch tokens (the read-out is
    not used). The tokens are taken *after* the final norm because that is
    what the pool averages: the pool is then linear in ``A``, every pooled
    token gets the same gradient ``g / Np`` (``g`` = gradient at the pooled
    vector), and Grad-CAM reduces to CAM (Zhou et al. 2016): the first-order
    contribution ``g . A_t / Np`` of each token to the logit. Before a
    per-token LayerNorm (heads built with ``fc_norm=False``) each token would
    get its own Jacobian and that identity would be lost; for ``fc_norm``
    heads (RETFound) the final norm is an ``Identity``, so ``A`` is the last
    block's output either way. With ``fc_norm`` the unrectified map sums to
    about zero over the pooled tokens (LayerNorm ignores a shift of its input
    and, up to its ``eps``, a rescaling, so ``g . pooled ~ 0``): the map shows
    the tokens that push the class more than the average token does, and has
    positive mass unless every token is the same.

    **CLS heads** (``global_pool='token'``): Chefer's baseline over the heads
    of the last attention map (see the module docstring): the patch tokens of
    the last block's output get no gradient from a CLS read-out, so Grad-CAM on
    them would be zero everywhere.
    """

    attention = "last"
    gradients = True

    def needs(self, info: ViTInfo, start_layer: int) -> Needs:
        """The pooled tokens and their gradient for average-pool heads, else the last attention map and ``dA``."""
        if info.global_pool == "avg":
            return Needs(features=True)
        return super().needs(info, start_layer)

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np): :func:`gradcam_tokens` (average pool) or :func:`gradcam_heads` (CLS head)."""
        p = trace.num_prefix_tokens
        if trace.features is not None and trace.feature_grad is not None:
            return gradcam_tokens(trace.features.to(trace.dtype), trace.feature_grad.to(trace.dtype),
                                  trace.info.pooled_slice(), p)
        last = trace.info.depth - 1
        return gradcam_heads(trace.attention(last), trace.grad(last), trace.weights, p)


@register_method("gae")
class GAEMethod(Method):
    """Generic attention explainability (Chefer ICCV 2021): ``R += mean_h(clamp(dA * A, 0)) @ R``."""

    attention = "from_start"
    gradients = True

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of ``prod_l (I + mean_h clamp(dA_l * A_l, 0)) - I`` from ``start_layer``.

        :func:`retcore.explain.gae.gae_readout`, the same function the guide's ``relevance``
        penalty differentiates (through :func:`retcore.explain.gae.gae_relevance`); the identity
        (residual) path is left out (see :mod:`retcore.explain.gae` for why).
        """
        layers = ((trace.attention(i), trace.grad(i)) for i in range(trace.info.depth - 1, trace.start_layer - 1, -1))
        return gae_readout(trace.weights, layers, trace.num_prefix_tokens)
