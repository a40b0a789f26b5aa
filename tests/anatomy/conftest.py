"""A 100-image, 224-px demo set (with quality perturbations and the planted marker) for the
anatomy tests, built once per session under pytest's temporary folder."""
from __future__ import annotations

from pathlib import Path

import pytest

DEMO_224 = dict(n_images=100, img_size=224, quality_rate=0.5, shortcut="glaucoma", seed=1, workers=2)


@pytest.fixture(scope="session")
def demo224(tmp_path_factory) -> Path:
    """Manifest path of the demo set ``DEMO_224`` (tests write only under temporary folders)."""
    from retcore.demo import DemoConfig, make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo224"), DemoConfig(**DEMO_224))
