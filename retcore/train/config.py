"""Fine-tuning configuration (the RETFound recipe by default)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FinetuneConfig"]


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run; stored as the run's config JSON.

    Defaults follow RETFound's ``main_finetune.py``: AdamW, ``lr = blr * batch /
    256`` with ``blr = 5e-3``, layer-wise lr decay 0.65, weight decay 0.05 (none
    on 1-D parameters), drop path 0.2, 50 epochs with 10 warm-up epochs and a
    half-cycle cosine to ``min_lr`` per iteration, label smoothing 0.1,
    RandAugment ``rand-m9-mstd0.5-inc1``, random erasing 0.25, bf16 autocast on GPU
    and on CPUs with native bf16 (``amp``; ``--no-amp`` for fp32).

    Guided fine-tuning (``retcore.guide``): ``guide`` = ``center`` | ``anatomy`` |
    ``mask`` (None = plain fine-tuning) adds ``guide_weight x`` the penalty form
    ``guide_form`` (``relevance`` | ``input_gradient`` | ``grad_x_input``) to the loss;
    ``guide_radius`` is the ``center`` disk radius (x FOV radius) and
    ``guide_mask_bits`` the ``mask`` bits that mark allowed pixels.
    """

    model: str = "retfound_mae"
    checkpoint: str | None = None
    img_size: int = 224
    global_pool: str = "avg"
    epochs: int = 50
    warmup_epochs: float = 10.0
    batch_size: int = 16
    accum_iter: int = 1
    blr: float = 5e-3
    lr: float | None = None
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.65
    drop_path: float | None = 0.2
    smoothing: float = 0.1
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    re_prob: float = 0.25
    crop_scale: tuple[float, float] = (0.08, 1.0)
    eye: str = "both"
    freeze_backbone: bool = False
    include_conflicting: bool = False
    seed: int = 0
    num_workers: int = 2
    device: str = "auto"
    amp: bool = True
    max_train_batches: int | None = None
    guide: str | None = None
    guide_form: str = "relevance"
    guide_weight: float = 1.0
    guide_radius: float = 0.6
    guide_mask_bits: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def effective_lr(self, world_size: int = 1) -> float:
        """Peak learning rate: ``lr`` if set, else ``blr x global batch / 256`` with the global batch
        ``batch_size x accum_iter x world_size`` (``batch_size`` is per process, as in RETFound)."""
        if self.lr is not None:
            return self.lr
        return self.blr * self.batch_size * self.accum_iter * world_size / 256

    def guide_spec(self):  # -> retcore.guide.GuideSpec | None
        """The run's :class:`~retcore.guide.GuideSpec`, or None for plain fine-tuning."""
        if self.guide is None:
            return None
        from retcore.guide import GuideSpec, get_guide, get_penalty

        get_guide(self.guide), get_penalty(self.guide_form)  # validate names early
        return GuideSpec(kind=self.guide, form=self.guide_form, weight=self.guide_weight, radius=self.guide_radius,
                         mask_bits=self.guide_mask_bits)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = asdict(self)
        out["crop_scale"] = list(self.crop_scale)
        out["effective_lr"] = self.effective_lr()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FinetuneConfig":
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in names}
        if "crop_scale" in kwargs:
            kwargs["crop_scale"] = tuple(kwargs["crop_scale"])
        return cls(**kwargs)
