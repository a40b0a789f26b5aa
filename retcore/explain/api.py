"""The entry point: :func:`relevance`."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from retcore.explain.capture import inspect_vit
from retcore.explain.errors import ExplainError
from retcore.explain.methods import Method, get_method, trace

__all__ = ["FP32_MATMUL", "fp32_matmul", "relevance"]

FP32_MATMUL = os.environ.get("RETCORE_FP32_MATMUL", "highest")
"""How ``lrp`` and ``lrp_pixels`` (which compute in float32) multiply matrices on a CUDA device:
``'highest'`` (default) keeps full float32; ``'high'`` lets float32 matrix products use TF32
tensor cores (inputs rounded to 10 mantissa bits, float32 accumulation): 2.3x faster on an H200
for ViT-L but, measured there (``bench/lrp_precision.py``, random weights, 32 images), the maps
moved a lot (``lrp`` per-image Spearman to full float32: median 0.69, minimum 0.20;
``lrp_pixels``: median 0.31), so it is opt-in. Set by the environment variable
``RETCORE_FP32_MATMUL`` or per call. CPUs always compute in full float32."""


@contextmanager
def fp32_matmul(precision: str, device: torch.device) -> Iterator[None]:
    """Float32 matrix products on ``device`` at ``precision`` ('high' | 'highest') inside the block
    (``torch.set_float32_matmul_precision``, restored after); nothing changes on a CPU."""
    if precision not in ("high", "highest"):
        raise ExplainError(f"fp32 matmul precision {precision!r} must be 'high' (TF32) or 'highest' (RETCORE_FP32_MATMUL)")
    if device.type != "cuda":
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def relevance(
    model: nn.Module,
    images: torch.Tensor,
    method: str | Method = "lrp",
    target: int | torch.Tensor | list[int] | None = None,
    start_layer: int = 0,
    *,
    readout: str | None = None,
    matmul_precision: str | None = None,
) -> torch.Tensor:
    """Raw (un-normalised) relevance of each patch token for the target classes.

    Args:
        model: a timm ``VisionTransformer`` (any depth, width, heads, patch
            size and input size; ``global_pool='token'`` (CLS head) or
            ``'avg'`` (mean of patch tokens -> ``fc_norm`` -> head, RETFound;
            also the double-``fc_norm`` variant)). It is run in eval mode with
            explicit attention and restored exactly afterwards.
        images: (B, C, H, W) float, H and W multiples of the patch size (moved
            to the model's device and dtype). The attention-based methods run
            under an active autocast; ``lrp`` and ``lrp_pixels`` always compute
            in the model's precision (bf16 activations make LRP noise).
        method: a name from :func:`~retcore.explain.list_methods` (``lrp``,
            ``lrp_pixels``, ``gae``, ``gradcam``, ``rollout``, ``attention``)
            or a :class:`~retcore.explain.Method` instance.
        target: class to explain: ``None`` = the predicted class of each
            image, an int = that class for all, a sequence / LongTensor of
            ``B`` ints = one class per image.
        start_layer: first block of the rollout (``lrp``, ``gae``,
            ``rollout``); ignored by the other methods.
        readout: ``None`` = the head's own read-out (``'cls'`` for a CLS head,
            ``'mean'`` of the patch rows for an average-pool head); ``'cls'``
            or ``'mean'`` to choose (see :mod:`retcore.explain.rollout`).
        matmul_precision: float32 matrix products of ``lrp`` / ``lrp_pixels`` on CUDA,
            ``'highest'`` or ``'high'`` (TF32, faster, maps move); None = :data:`FP32_MATMUL`.

    Returns:
        (B, gh, gw) relevance on the token grid (``gh = H / ph``, ``gw = W / pw``),
        float32 (float64 for a float64 model), detached, on the model's device
        — except ``lrp_pixels``, whose grid is the pixel grid (B, H, W).
        Upsample / normalise for display with :mod:`retcore.explain.display`.

    Raises:
        UnsupportedModelError: not a supported timm ViT.
        UnknownMethodError: unknown method name.
        TargetError: target class out of range or of the wrong shape.
        ExplainError: images of the wrong shape, bad ``start_layer`` or ``readout``.
    """
    info = inspect_vit(model)
    m = get_method(method) if isinstance(method, str) else method
    if not isinstance(m, Method):
        raise ExplainError(f"method must be a registered name or a Method instance, got {type(method).__name__}")
    param = next(model.parameters())
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ExplainError(f"images must be a (B, C, H, W) tensor, got {shape}: add a batch dimension")
    first_conv = next(m for m in model.patch_embed.modules() if isinstance(m, torch.nn.Conv2d))  # type: ignore[union-attr]
    in_chans = int(first_conv.in_channels)
    b, c, h, w = images.shape
    ph, pw = info.patch_size
    if c != in_chans or b == 0 or h % ph or w % pw:
        raise ExplainError(
            f"images of shape {tuple(images.shape)} do not fit the model: need (B>0, {in_chans}, H, W) "
            f"with H a multiple of {ph} and W a multiple of {pw}"
        )
    pe = model.patch_embed  # type: ignore[union-attr]
    size = getattr(pe, "img_size", None)
    if getattr(pe, "strict_img_size", False) and size is not None and (h, w) != tuple(size):
        raise ExplainError(
            f"images are {h}x{w} but the model takes {size[0]}x{size[1]}: resize them (or build the model "
            f"with img_size=({h}, {w}))"
        )
    dtype = param.dtype if param.dtype.is_floating_point else torch.float32
    x = images.detach().to(device=param.device, dtype=dtype)
    with ExitStack() as stack:
        if not m.autocast:  # float32 throughout; on CUDA its matrix products at ``matmul_precision``
            stack.enter_context(torch.autocast(x.device.type, enabled=False))
            stack.enter_context(fp32_matmul(matmul_precision or FP32_MATMUL, x.device))
        tr = stack.enter_context(trace(m, model, x, target, start_layer, readout, info))
        out = m.compute(tr).detach().to(tr.dtype)
    if m.output == "pixels":
        return out
    return out.reshape(b, h // ph, w // pw)
