"""A 100-image, 224-px demo set (with quality perturbations and the planted marker) for the
anatomy tests; kept in the pytest cache so reruns reuse it."""
from __future__ import annotations

from pathlib import Path

import pytest

DEMO_224 = dict(n_images=100, img_size=224, quality_rate=0.5, shortcut="glaucoma", seed=1, workers=2)


@pytest.fixture(scope="session")
def demo224(request, tmp_path_factory) -> Path:
    """Manifest path of the demo set ``DEMO_224`` (rebuilt only when the generator changes)."""
    from retcore.demo import DemoConfig, make_demo_dataset

    cache = getattr(request.config, "cache", None)
    out = cache.mkdir("retcore_anatomy_demo224") if cache is not None else tmp_path_factory.mktemp("demo224")
    return make_demo_dataset(out, DemoConfig(**DEMO_224))
