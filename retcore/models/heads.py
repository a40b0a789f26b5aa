"""Classification-head details of RETFound-style ViTs.

``timm``'s :class:`~timm.models.vision_transformer.VisionTransformer` with
``global_pool='avg', fc_norm=True`` already is RETFound's head: the mean of the
patch tokens (the ``num_prefix_tokens`` CLS/register tokens are sliced off
before averaging), then ``fc_norm`` (LayerNorm), then the linear ``head``; the
final ``norm`` is an ``Identity`` in that configuration.

The official RETFound code running on timm 0.9.x normalises twice: its
``forward_features`` returns ``fc_norm(mean(patch tokens))`` with shape
``(B, 1, D)`` and timm 0.9's ``forward_head`` (``global_pool=True``, which is
not ``'avg'``) takes token 0 of it and applies ``fc_norm`` again. Checkpoints
fine-tuned that way only reproduce their predictions with the same double
normalisation, which :class:`DoubleFcNormVisionTransformer` provides.
"""
from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["HEAD_INIT_STD", "DoubleFcNormVisionTransformer", "init_head", "uses_double_fc_norm"]

HEAD_INIT_STD = 2e-5
"""Standard deviation of the truncated-normal head initialisation (RETFound/MAE)."""


class DoubleFcNormVisionTransformer(VisionTransformer):
    """A timm ViT whose head computes ``head(fc_norm(fc_norm(pool(tokens))))``.

    Same parameters and state-dict keys as the plain model (one ``fc_norm``,
    applied twice), so checkpoints move freely between the two classes. Only
    meaningful with ``global_pool='avg'`` and ``fc_norm=True``.
    """

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens ``(B, N, D)`` -> logits ``(B, num_classes)`` (or ``(B, D)`` with ``pre_logits``)."""
        x = self.pool(x)
        x = self.fc_norm(x)
        x = self.fc_norm(x)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)


def uses_double_fc_norm(model: nn.Module) -> bool:
    """True when ``model`` applies ``fc_norm`` twice (see module docstring)."""
    return isinstance(model, DoubleFcNormVisionTransformer)


@torch.no_grad()
def init_head(model: nn.Module, std: float = HEAD_INIT_STD) -> bool:
    """Re-initialise ``model.head``: weight ~ truncated normal(0, ``std``), bias 0.

    Returns False (and does nothing) when the head is not an ``nn.Linear``
    (e.g. ``num_classes=0``).
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        return False
    nn.init.trunc_normal_(head.weight, std=std)
    if head.bias is not None:
        nn.init.zeros_(head.bias)
    return True
