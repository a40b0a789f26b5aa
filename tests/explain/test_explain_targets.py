"""Target classes: None = prediction, an int, one per image; out of range -> a clear error."""
from __future__ import annotations

import pytest
import torch
from explain_factories import make_images, make_vit

from retcore.errors import RetcoreError
from retcore.explain import TargetError, relevance

GRADIENT_METHODS = ("lrp", "lrp_pixels", "gae", "gradcam")


@pytest.fixture(scope="module")
def setup():
    model = make_vit(depth=2, dim=48, heads=3, patch=16, img=(32, 32), pool="avg", classes=4, seed=9)
    images = make_images(3, (32, 32))
    with torch.no_grad():
        predicted = model(images).argmax(-1)
    return model, images, predicted


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_none_is_the_predicted_class(setup, method: str) -> None:
    model, images, predicted = setup
    torch.testing.assert_close(relevance(model, images, method), relevance(model, images, method, target=predicted))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_int_and_per_image_targets(setup, method: str) -> None:
    model, images, _ = setup
    per_class = [relevance(model, images, method, target=c) for c in range(4)]
    assert not torch.allclose(per_class[0], per_class[1])
    mixed = [2, 0, 3]
    for target in (mixed, torch.tensor(mixed), torch.tensor(mixed, dtype=torch.int32)):
        got = relevance(model, images, method, target=target)
        for i, c in enumerate(mixed):
            torch.testing.assert_close(got[i], per_class[c][i])
    torch.testing.assert_close(relevance(model, images, method, target=torch.tensor(1)), per_class[1])


@pytest.mark.parametrize("method", ["lrp", "rollout"])
@pytest.mark.parametrize(
    "target, match",
    [(4, "out of range .* 4 classes"), (-1, "out of range"), ([0, 1, 9], "target class 9 is out of range"),
     ([0, 1], r"shape \(2,\)"), (torch.zeros(3, 1, dtype=torch.long), "shape"), (1.5, "dtype"),
     (True, "not a class index"), ("cat", "not a class index")],
)
def test_bad_targets_raise(setup, method: str, target, match: str) -> None:
    model, images, _ = setup
    with pytest.raises(TargetError, match=match):
        relevance(model, images, method, target=target)
    assert issubclass(TargetError, RetcoreError)
