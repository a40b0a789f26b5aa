"""The model-parameter randomisation test on one batch: maps on each step's model vs the trained one."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from retcore.explain import relevance
from retcore.sanity.randomize import Step, randomization, schedule
from retcore.sanity.similarity import map_similarity

__all__ = ["MethodSimilarity", "StepResult", "reference_maps", "sanity_check"]


@dataclass(frozen=True)
class MethodSimilarity:
    """One method's similarities at one step.

    Attributes:
        method: explanation method name.
        images: (n,) indices into the batch of the images compared.
        spearman, ssim: (n,) float64 (see :mod:`retcore.sanity.similarity`).
        seconds: wall seconds of the randomised maps and their comparison (the cost of the
            step for this method, the model's re-initialisation not included).
    """

    method: str
    images: np.ndarray
    spearman: np.ndarray
    ssim: np.ndarray
    seconds: float = 0.0


@dataclass(frozen=True)
class StepResult:
    """Every method's similarities on one step's model."""

    step: Step
    methods: list[MethodSimilarity] = field(default_factory=list)


def _maps(model: nn.Module, images: torch.Tensor, method: str, targets: torch.Tensor, start_layer: int) -> np.ndarray:
    return relevance(model, images, method, targets, start_layer).float().cpu().numpy()


def reference_maps(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, methods: Sequence[str], *,
                   start_layer: int = 0) -> dict[str, np.ndarray]:
    """Each method's maps of ``images`` (B, C, H, W) for ``targets`` (B,) on the model as it is:
    ``{method: (B, h, w) float32}`` (token grid, or pixel grid for ``lrp_pixels``)."""
    return {m: _maps(model, images, m, targets, start_layer) for m in methods}


def sanity_check(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, methods: Sequence[str],
                 mode: str, *, seed: int = 0, start_layer: int = 0,
                 reference: Mapping[str, np.ndarray] | None = None,
                 todo: Callable[[Step, str], Sequence[int]] | None = None) -> Iterator[StepResult]:
    """Walk the ``mode`` schedule on ``model`` and compare each method's maps with the trained model's.

    Args:
        model: a trained timm ViT; randomised in place step by step and restored exactly when
            the iteration ends (also when it is abandoned: close the generator).
        images: (B, C, H, W) on the model's device.
        targets: (B,) class indices to explain (the run's stored predictions).
        methods: registered explanation method names.
        mode: ``'cascading'`` or ``'independent'`` (:func:`retcore.sanity.schedule`).
        seed: randomisation seed (:func:`retcore.sanity.group_seed`).
        start_layer: first rollout block (``lrp``, ``gae``, ``rollout``).
        reference: the trained model's maps (:func:`reference_maps`); computed when missing.
        todo: ``todo(step, method)`` -> batch indices still to compare (resuming); default all.
            Asked once per (step, method) before the walk; a step with nothing to do is skipped
            without computing maps (cascading still re-initialises its group).

    Yields:
        One :class:`StepResult` per step with work, in schedule order.
    """
    plan = schedule(model, mode)
    needs = {(s.index, m): list(todo(s, m)) if todo is not None else list(range(len(images)))
             for s in plan for m in methods}
    ref = dict(reference or {})
    missing = [m for m in methods if m not in ref and any(needs[s.index, m] for s in plan)]
    ref.update(reference_maps(model, images, targets, missing, start_layer=start_layer))
    wanted = [s.index for s in plan if any(needs[s.index, m] for m in methods)]
    with randomization(model, mode, seed, steps=wanted) as walk:
        for step in walk:
            result = StepResult(step)
            for method in methods:
                idx = needs[step.index, method]
                if not idx:
                    continue
                started = time.perf_counter()
                sel = torch.as_tensor(idx, device=images.device)
                maps = _maps(model, images[sel], method, targets[sel], start_layer)
                rho, sim = map_similarity(ref[method][idx], maps)
                result.methods.append(MethodSimilarity(method, np.asarray(idx), rho, sim,
                                                       time.perf_counter() - started))
            yield result
