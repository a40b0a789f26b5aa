"""Recording what a timm ViT computes, through hooks that never outlive a ``with``.

:func:`capture` is the only place where :mod:`retcore.explain` touches a
model. Inside ``with capture(model, ...) as rec:`` the model is in eval mode,
its parameters do not require gradients (with ``trainable=True`` both are left
as they are, so that a training loss can use what is recorded), the attention
modules of the requested blocks run timm's explicit (non-fused) attention so
that the post-softmax attention ``A`` (B, H, N, N) exists, and forward hooks store
the tensors the explanation methods need in ``rec``. On exit every hook is
removed and the model is restored exactly: the ``fused_attn`` flag of every
attention module, the ``training`` flag of every submodule and the
``requires_grad`` flag of every parameter. The hooks only read tensors (the
one exception: the attention map of the first block whose gradient is
requested — or, with ``features=True`` and no such map upstream, the tokens
the head pools — is replaced by a leaf copy with ``requires_grad=True``;
values are identical), so the logits are those of the model in eval mode (in
its own mode with ``trainable=True``) with explicit attention.

:func:`inspect_vit` checks that a model is a timm ``VisionTransformer`` made
of the parts the LRP rules know (``Block``, ``Attention`` without gate,
``Mlp``; ``'token'`` or ``'avg'`` pooling without attention pooling) and
describes it as a :class:`ViTInfo`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from timm.layers import Attention, Mlp
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from retcore.explain.errors import UnsupportedModelError

__all__ = ["BlockRecord", "EmbedRecord", "HeadRecord", "Recorder", "ViTInfo", "activation_support", "capture",
           "inspect_vit"]

POOLS = ("token", "avg")
"""Head poolings the read-outs and LRP rules support (timm ``global_pool``)."""


@dataclass(frozen=True)
class ViTInfo:
    """What :mod:`retcore.explain` needs to know about a ViT.

    Attributes:
        depth: number of transformer blocks ``L``.
        num_prefix_tokens: CLS + register tokens in front of the patch tokens.
        has_class_token: the sequence starts with a CLS token.
        patch_size: ``(ph, pw)`` in pixels.
        global_pool: ``'token'`` (CLS head) or ``'avg'`` (mean of tokens, RETFound).
        pool_include_prefix: the average also covers the prefix tokens.
        num_classes: logits per image.
    """

    depth: int
    num_prefix_tokens: int
    has_class_token: bool
    patch_size: tuple[int, int]
    global_pool: str
    pool_include_prefix: bool
    num_classes: int

    def pooled_slice(self) -> slice:
        """The token positions the ``'avg'`` head averages over."""
        return slice(0, None) if self.pool_include_prefix else slice(self.num_prefix_tokens, None)


def _model_name(model: nn.Module) -> str:
    return str(getattr(model, "retcore_name", type(model).__name__))


def inspect_vit(model: nn.Module) -> ViTInfo:
    """Check ``model`` and describe it.

    Raises:
        UnsupportedModelError: not a timm ``VisionTransformer``, no linear
            classification head, an attention-pool / max-pool head, or blocks
            other than timm's standard ``Block(Attention, Mlp)``.
    """
    name = _model_name(model)
    if not isinstance(model, VisionTransformer):
        raise UnsupportedModelError(
            f"model {name} is a {type(model).__name__}, not a timm VisionTransformer: retcore.explain "
            "only explains ViTs (build one with retcore.models.create_model)"
        )
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise UnsupportedModelError(
            f"model {name} has no linear classification head ({type(head).__name__}): "
            "create it with num_classes > 0"
        )
    pool = getattr(model, "global_pool", None)
    if getattr(model, "attn_pool", None) is not None or pool not in POOLS:
        raise UnsupportedModelError(
            f"model {name} pools with global_pool={pool!r}: explanations support 'token' (CLS) and "
            "'avg' (RETFound) heads; rebuild it with one of those"
        )
    if pool == "token" and getattr(model, "cls_token", None) is None:
        raise UnsupportedModelError(f"model {name} reads a CLS token it does not have: use global_pool='avg'")
    blocks = list(getattr(model, "blocks", []))
    if not blocks:
        raise UnsupportedModelError(f"model {name} has no transformer blocks")
    for i, blk in enumerate(blocks):
        attn = getattr(blk, "attn", None)
        if not (isinstance(blk, Block) and isinstance(attn, Attention) and isinstance(blk.mlp, Mlp)):
            raise UnsupportedModelError(
                f"block {i} of model {name} is a {type(blk).__name__} with {type(attn).__name__}: the LRP "
                "rules cover timm's standard Block(Attention, Mlp) only"
            )
        if getattr(attn, "gate", None) is not None:
            raise UnsupportedModelError(
                f"block {i} of model {name} uses gated attention, which the LRP rules do not cover"
            )
        if not all(isinstance(m, nn.Linear) for m in (attn.qkv, attn.proj, blk.mlp.fc1, blk.mlp.fc2)):
            raise UnsupportedModelError(
                f"block {i} of model {name} has projections that are not nn.Linear (conv MLP?): not supported"
            )
    patch = model.patch_embed.patch_size
    patch_size = (int(patch[0]), int(patch[1])) if isinstance(patch, tuple | list) else (int(patch), int(patch))
    return ViTInfo(
        depth=len(blocks),
        num_prefix_tokens=int(model.num_prefix_tokens),
        has_class_token=model.cls_token is not None,
        patch_size=patch_size,
        global_pool=str(pool),
        pool_include_prefix=bool(getattr(model, "pool_include_prefix", False)),
        num_classes=int(head.out_features),
    )


def activation_support(model: nn.Module, layers: Iterable[int]) -> str | None:
    """Whether the activations of blocks ``layers`` can be recorded for LRP.

    An MLP activation or LayerScale working in place (``inplace=True``)
    overwrites the activations the LRP rules read.

    Returns:
        None when every block in ``layers`` can be recorded, else a one-line
        reason naming the first block that cannot.
    """
    blocks = list(model.blocks)  # type: ignore[union-attr, arg-type]
    for i in sorted(set(layers)):
        blk = blocks[i]
        if any(getattr(m, "inplace", False) for m in (blk.mlp.act, blk.ls1, blk.ls2)):
            return (f"block {i} of model {_model_name(model)} uses an in-place activation or LayerScale, which "
                    "overwrites the activations LRP needs: rebuild it without inplace=True")
    return None


@dataclass
class BlockRecord:
    """Tensors of one block (``B`` images, ``N`` tokens, width ``D``, ``H`` heads).

    Everything is detached except ``attn``, which keeps its autograd history so
    that gradients with respect to it can be taken.

    Attributes:
        attn: post-softmax attention ``A`` (B, H, N, N) as consumed by ``A @ V``.
        x_in: block input = residual of the first Add (B, N, D).
        qkv_in, qkv_out: ``qkv`` input (B, N, D) and output (B, N, 3D).
        q, k: queries / keys after ``q_norm`` / ``k_norm``, before scaling (B, H, N, d).
        attn_out: ``A @ V`` with heads merged (B, N, D), the input of ``attn.norm``.
        proj_in, proj_out: ``proj`` input and output (B, N, D).
        branch1: attention branch after LayerScale (B, N, D).
        x_mid: input of the second Add's residual = input of ``norm2`` (B, N, D).
        fc1_in, fc1_out, fc2_in, fc2_out: the MLP linears' inputs and outputs.
        branch2: MLP branch after LayerScale (B, N, D).
        x_out: block output ``x_mid + branch2`` (B, N, D).
    """

    attn: torch.Tensor | None = None
    x_in: torch.Tensor | None = None
    qkv_in: torch.Tensor | None = None
    qkv_out: torch.Tensor | None = None
    q: torch.Tensor | None = None
    k: torch.Tensor | None = None
    attn_out: torch.Tensor | None = None
    proj_in: torch.Tensor | None = None
    proj_out: torch.Tensor | None = None
    branch1: torch.Tensor | None = None
    x_mid: torch.Tensor | None = None
    fc1_in: torch.Tensor | None = None
    fc1_out: torch.Tensor | None = None
    fc2_in: torch.Tensor | None = None
    fc2_out: torch.Tensor | None = None
    branch2: torch.Tensor | None = None
    x_out: torch.Tensor | None = None


@dataclass
class HeadRecord:
    """Tensors of the head: ``tokens`` = output of the final ``norm`` (B, N, D),
    ``head_in`` = input of the linear ``head`` (B, D), ``logits`` (B, C) — all
    detached; ``features`` = the same tokens as ``tokens`` but with their
    autograd history (``capture(features=True)``), for gradients with respect
    to the tokens the head pools."""

    tokens: torch.Tensor | None = None
    head_in: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None


@dataclass
class EmbedRecord:
    """Tensors of the embedding: ``image`` (B, 3, H, W) entering the patch
    convolution, ``conv_out`` its output (B, D, gh, gw), ``patch_tokens`` the
    patch embedding output (B, Np, D) and ``tokens`` the sequence after the
    position embedding (B, N, D), or None for a model without one."""

    image: torch.Tensor | None = None
    conv_out: torch.Tensor | None = None
    patch_tokens: torch.Tensor | None = None
    tokens: torch.Tensor | None = None


@dataclass
class Recorder:
    """Filled by the hooks of :func:`capture`: one :class:`BlockRecord` per block."""

    info: ViTInfo
    blocks: list[BlockRecord]
    head: HeadRecord = field(default_factory=HeadRecord)
    embed: EmbedRecord = field(default_factory=EmbedRecord)

    def attention(self, index: int) -> torch.Tensor:
        """The attention map ``A`` (B, H, N, N) of block ``index`` (with its autograd history)."""
        attn = self.blocks[index].attn
        if attn is None:
            raise RuntimeError(f"the attention of block {index} was not captured")
        return attn

    def features(self) -> torch.Tensor:
        """The tokens the head pools (B, N, D), output of the final ``norm``, with their autograd history."""
        if self.head.features is None:
            raise RuntimeError("the head's input tokens were not captured: use capture(..., features=True)")
        return self.head.features


def _store(record: Any, name: str, what: str) -> Callable[..., None]:
    """A forward hook storing the detached ``input[0]`` or ``output`` of a module."""

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        value = args[0] if what == "in" else output
        setattr(record, name, value.detach())

    return hook


def _store_pre(record: Any, name: str) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        setattr(record, name, args[0].detach())

    return hook


def _store_live(record: Any, name: str, needs_grad: bool) -> Callable[..., torch.Tensor | None]:
    """A forward hook storing a module's output with its autograd history (not detached).

    With ``needs_grad`` (and grad mode on), an output that does not require
    gradients yet is replaced by a leaf copy that does (same values), so the
    target logits can be differentiated with respect to it.
    """

    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
        replaced = None
        if needs_grad and torch.is_grad_enabled() and not output.requires_grad:
            replaced = output.detach().requires_grad_(True)  # same values, now a leaf we can differentiate
        setattr(record, name, output if replaced is None else replaced)
        return replaced

    return hook


@contextmanager
def capture(
    model: nn.Module,
    *,
    attention_layers: Iterable[int] = (),
    grad_layers: Iterable[int] = (),
    activation_layers: Iterable[int] = (),
    head: bool = False,
    embedding: bool = False,
    features: bool = False,
    trainable: bool = False,
) -> Iterator[Recorder]:
    """Attach recording hooks to ``model`` for the duration of a ``with`` block.

    Args:
        model: a timm ``VisionTransformer`` (checked by :func:`inspect_vit`).
        attention_layers: blocks whose attention map ``A`` is recorded (their
            attention runs unfused inside the block; the others stay fused).
        grad_layers: blocks whose ``A`` must be differentiable (subset of
            ``attention_layers``; only effective under ``torch.enable_grad()``).
        activation_layers: blocks whose linear-layer inputs/outputs, residual
            stream and queries/keys are recorded (for LRP).
        head: record the final tokens, the head input and the logits.
        embedding: record the patch embedding (for pixel-level LRP).
        features: record the tokens the head pools (output of the final
            ``norm``, (B, N, D)) with their autograd history, differentiable
            under ``torch.enable_grad()`` (Grad-CAM on tokens); the final
            ``norm`` is an ``Identity`` for ``fc_norm`` heads, so these are
            then the last block's output.
        trainable: leave the model's train/eval mode and its parameters'
            ``requires_grad`` as they are (default: eval mode, frozen
            parameters), so the logits and the recorded attention maps carry
            their graph to the parameters — for training losses built from
            explanations (:func:`retcore.explain.gae.gae_relevance`).

    Yields:
        a :class:`Recorder`, filled by each forward pass of ``model``.
    """
    info = inspect_vit(model)
    blocks = list(model.blocks)  # type: ignore[attr-defined]
    attention_set = set(attention_layers) | set(grad_layers)
    grad_set = set(grad_layers)
    activation_set = set(activation_layers)
    for i in attention_set | activation_set:
        if not 0 <= i < len(blocks):
            raise IndexError(f"block {i} out of range for a model of depth {len(blocks)}")
    reason = activation_support(model, activation_set)
    if reason is not None:
        raise UnsupportedModelError(reason)
    rec = Recorder(info=info, blocks=[BlockRecord() for _ in blocks])

    training = [] if trainable else [(m, m.training) for m in model.modules()]
    grads = [] if trainable else [(p, p.requires_grad) for p in model.parameters()]
    fused = [(blk.attn, blk.attn.fused_attn) for blk in blocks]
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        if not trainable:
            model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        for i in sorted(attention_set):
            attn = blocks[i].attn
            attn.fused_attn = False
            handles.append(attn.attn_drop.register_forward_hook(_store_live(rec.blocks[i], "attn", i in grad_set)))
        for i in sorted(activation_set):
            blk, r = blocks[i], rec.blocks[i]
            attn = blk.attn
            attn.fused_attn = False
            if i not in attention_set:
                handles.append(attn.attn_drop.register_forward_hook(_store_live(r, "attn", False)))
            handles += [
                blk.norm1.register_forward_pre_hook(_store_pre(r, "x_in")),
                attn.qkv.register_forward_hook(_store(r, "qkv_in", "in")),
                attn.qkv.register_forward_hook(_store(r, "qkv_out", "out")),
                attn.q_norm.register_forward_hook(_store(r, "q", "out")),
                attn.k_norm.register_forward_hook(_store(r, "k", "out")),
                getattr(attn, "norm", attn.proj).register_forward_pre_hook(_store_pre(r, "attn_out")),
                attn.proj.register_forward_hook(_store(r, "proj_in", "in")),
                attn.proj.register_forward_hook(_store(r, "proj_out", "out")),
                blk.ls1.register_forward_hook(_store(r, "branch1", "out")),
                blk.norm2.register_forward_pre_hook(_store_pre(r, "x_mid")),
                blk.mlp.fc1.register_forward_hook(_store(r, "fc1_in", "in")),
                blk.mlp.fc1.register_forward_hook(_store(r, "fc1_out", "out")),
                blk.mlp.fc2.register_forward_hook(_store(r, "fc2_in", "in")),
                blk.mlp.fc2.register_forward_hook(_store(r, "fc2_out", "out")),
                blk.ls2.register_forward_hook(_store(r, "branch2", "out")),
                blk.register_forward_hook(_store(r, "x_out", "out")),
            ]
        if head:
            handles += [
                model.norm.register_forward_hook(_store(rec.head, "tokens", "out")),  # type: ignore[union-attr]
                model.head.register_forward_hook(_store(rec.head, "head_in", "in")),  # type: ignore[union-attr]
                model.head.register_forward_hook(_store(rec.head, "logits", "out")),  # type: ignore[union-attr]
            ]
        if features:
            norm = model.norm  # type: ignore[union-attr]
            handles.append(norm.register_forward_hook(_store_live(rec.head, "features", True)))
        if embedding:
            pe = model.patch_embed  # type: ignore[attr-defined]
            handles += [
                pe.proj.register_forward_hook(_store(rec.embed, "image", "in")),
                pe.proj.register_forward_hook(_store(rec.embed, "conv_out", "out")),
                pe.register_forward_hook(_store(rec.embed, "patch_tokens", "out")),
            ]
            if getattr(model, "pos_embed", None) is not None:
                pos_drop = model.pos_drop  # type: ignore[union-attr]
                handles.append(pos_drop.register_forward_hook(_store(rec.embed, "tokens", "out")))
        yield rec
    finally:
        for handle in handles:
            handle.remove()
        for attn, flag in fused:
            attn.fused_attn = flag
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, flag in training:
            m.training = flag
