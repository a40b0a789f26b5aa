"""Reading, loading and saving ViT checkpoints safely.

One job per module: ``read`` (the safe ``torch.load`` and the recognised key layouts,
:func:`read_checkpoint`), ``load`` (fitting a state dict into a model:
:func:`load_retfound`, :func:`load_checkpoint_into`, :class:`LoadReport`), ``hub``
(``hub:<owner>/<name>`` downloads) and ``save`` (:func:`save_checkpoint`).
"""
from __future__ import annotations

from retcore.models.checkpoint.hub import HUB_PREFIX, hub_download
from retcore.models.checkpoint.load import LoadReport, load_checkpoint_into, load_retfound
from retcore.models.checkpoint.read import CHECKPOINT_KINDS, load_checkpoint_state, read_checkpoint
from retcore.models.checkpoint.read import CheckpointSource, StateDict  # noqa: F401  (public before the split)
from retcore.models.checkpoint.save import FORMAT_VERSION, save_checkpoint

__all__ = [
    "CHECKPOINT_KINDS",
    "FORMAT_VERSION",
    "HUB_PREFIX",
    "LoadReport",
    "hub_download",
    "load_checkpoint_into",
    "load_checkpoint_state",
    "load_retfound",
    "read_checkpoint",
    "save_checkpoint",
]
