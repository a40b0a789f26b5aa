"""Guided (attention-regularised) fine-tuning: allowed regions, joint augmentation, penalties."""
from retcore.guide.data import GuidedDataset, JointTrainTransform
from retcore.guide.penalty import PENALTY_REGISTRY, get_penalty, list_penalties, register_penalty
from retcore.guide.regions import (ANATOMY_REGIONS, GUIDE_REGISTRY, GuideContext, GuideSpec, allowed_region, get_guide,
                                   list_guides, register_guide)

__all__ = [
    "ANATOMY_REGIONS",
    "GUIDE_REGISTRY",
    "GuideContext",
    "GuideSpec",
    "GuidedDataset",
    "JointTrainTransform",
    "PENALTY_REGISTRY",
    "allowed_region",
    "get_guide",
    "get_penalty",
    "list_guides",
    "list_penalties",
    "register_guide",
    "register_penalty",
]
