"""Semi-synthetic demo fundus dataset with ground truth, built offline from ``skimage.data.retina()``.

One real, public-domain fundus photograph (a macula-centred left eye) is warped per sample
(rotation +-15 deg, scale 0.9-1.1, small translation, right eyes mirrored), colour-jittered,
given class evidence (cataract haze, diabetic-retinopathy spots, glaucomatous pale cup, or
nothing for normal), optionally degraded (blur, glare, off-centre shift, under-exposure) and
optionally marked with a planted shortcut. Every image has a mask and its ground truth in
the manifest. See ``make_demo_dataset``.
"""

from .config import DEMO_CLASSES, DemoConfig
from .generate import DEMO_CONFIG_FILE, DEMO_MANIFEST, MANIFEST_COLUMNS, make_demo_dataset

__all__ = ["DemoConfig", "DEMO_CLASSES", "DEMO_MANIFEST", "DEMO_CONFIG_FILE", "MANIFEST_COLUMNS", "make_demo_dataset"]
