"""retcore.registry, and every registry built on it: same order, same duplicate and unknown-name errors."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest

from retcore import quality, zones
from retcore.errors import RetcoreError
from retcore.explain import METHOD_REGISTRY, Method, UnknownMethodError, get_method, list_methods, register_method
from retcore.guide import (GUIDE_REGISTRY, PENALTY_REGISTRY, get_guide, get_penalty, list_guides, list_penalties,
                           register_guide, register_penalty)
from retcore.models import MODEL_REGISTRY, UnknownModelError, create_model, list_models, register_model
from retcore.registry import DuplicateNameError, Registry, UnknownNameError


class Case(NamedTuple):
    registry: Registry[Any]
    kind: str
    builtin: list[str]  # in registration order
    register: Callable[[str], Callable[[Any], Any]]  # the module's public decorator
    names: Callable[[], list[str]]  # the module's public listing
    lookup: Callable[[str], Any]  # a public function that resolves a name
    error: type[UnknownNameError]
    make: Callable[[], Any]  # a fresh object to register


class _Probe(Method):
    def compute(self, trace):  # pragma: no cover - never run
        raise NotImplementedError


def _probe_method() -> type[Method]:
    return type("Probe", (_Probe,), {})


CASES = [
    pytest.param(Case(MODEL_REGISTRY, "model",
                      ["retfound_mae", "retfound_dinov2", "vit_tiny", "vit_small", "vit_base", "demo"],
                      register_model, list_models, lambda n: create_model(n, 2), UnknownModelError,
                      lambda: lambda num_classes, **o: None), id="models"),
    pytest.param(Case(METHOD_REGISTRY, "explanation method",
                      ["rollout", "attention", "gradcam", "gae", "lrp", "lrp_pixels"],
                      register_method, list_methods, get_method, UnknownMethodError, _probe_method), id="methods"),
    pytest.param(Case(quality.METRIC_REGISTRY, "quality metric",
                      ["blur", "glare", "illumination_mean", "illumination_contrast", "off_centre", "fov_cutoff",
                       "fov_coverage"],
                      quality.register_metric, quality.list_metrics,
                      lambda n: quality.quality_metrics(np.zeros((8, 8, 3), np.uint8), names=[n]), UnknownNameError,
                      lambda: lambda q: 0.0), id="quality"),
    pytest.param(Case(zones.ZONE_SET_REGISTRY, "zone set", ["thirds", "anatomy", "mask"],
                      zones.register_zone_set, zones.list_zone_sets,
                      lambda n: zones.compute_zones(n, zones.ZoneContext(8, 8, fov=(4.0, 4.0, 4.0))),
                      UnknownNameError, lambda: lambda ctx, shape: {}), id="zones"),
    pytest.param(Case(GUIDE_REGISTRY, "guide", ["center", "anatomy", "mask"], register_guide, list_guides, get_guide,
                      UnknownNameError, lambda: lambda ctx, spec: None), id="guides"),
    pytest.param(Case(PENALTY_REGISTRY, "guide penalty", ["input_gradient", "grad_x_input", "relevance"],
                      register_penalty, list_penalties, get_penalty, UnknownNameError, lambda: lambda *a: None),
                 id="penalties"),
]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest):
    """One registry; whatever a test registers under ``test_*`` is removed afterwards."""
    c: Case = request.param
    before = c.registry.names()
    yield c
    for name in c.registry.names():
        if name not in before:
            c.registry.unregister(name)
    assert c.registry.names() == before


def test_builtins_listed_in_registration_order(case: Case) -> None:
    assert isinstance(case.registry, Registry)
    assert case.names() == case.registry.names() == list(case.registry) == case.builtin
    assert len(case.registry) == len(case.builtin)
    assert all(name in case.registry for name in case.builtin) and "nope" not in case.registry


def test_unknown_name_is_one_error_listing_the_names(case: Case) -> None:
    with pytest.raises(UnknownNameError) as info:
        case.lookup("nope")
    err = info.value
    assert type(err) is case.error
    # every caller that caught RetcoreError, KeyError or ValueError before still catches it
    assert isinstance(err, RetcoreError) and isinstance(err, KeyError) and isinstance(err, ValueError)
    assert str(err) == f"unknown {case.kind} 'nope': choose one of {', '.join(case.builtin)}"
    assert (err.kind, err.unknown, err.choices) == (case.kind, ["nope"], case.builtin)
    with pytest.raises(case.error, match="unknown .*'nope'"):
        case.registry.get("nope")


def test_duplicate_name_raises_and_keeps_the_first(case: Case) -> None:
    first_name = case.builtin[0]
    first = case.registry.get(first_name)
    with pytest.raises(DuplicateNameError, match=f"^{case.kind} '{first_name}' is already registered$"):
        case.register(first_name)(case.make())
    with pytest.raises(ValueError, match="already registered"):  # the type callers caught before
        case.registry.register(first_name)(first)  # even the same object: a name is registered once
    assert case.registry.get(first_name) is first and case.registry.names() == case.builtin


def test_register_appends_and_unregister_removes(case: Case) -> None:
    obj = case.make()
    assert case.register("test_extra")(obj) is obj  # the decorator returns its argument
    assert case.names() == [*case.builtin, "test_extra"]
    assert case.registry.get("test_extra") is obj
    assert case.registry.unregister("test_extra") is obj
    assert case.names() == case.builtin
    with pytest.raises(case.error, match="'test_extra'"):
        case.registry.unregister("test_extra")


def test_registered_method_gets_its_name() -> None:
    cls = register_method("test_named")(_probe_method())
    try:
        assert cls.name == "test_named" and isinstance(get_method("test_named"), cls)
    finally:
        METHOD_REGISTRY.unregister("test_named")


def test_registry_unit() -> None:
    reg: Registry[int] = Registry("widget")
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'a': choose one of \(none registered\)$"):
        reg.get("a")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.names() == ["b", "a"] and reg.get("a") == 1
    assert repr(reg) == "Registry('widget': b, a)"
    with pytest.raises(UnknownNameError) as info:
        reg.check(["a", "x", "y"])  # every unknown name at once
    assert str(info.value) == "unknown widget 'x', 'y': choose one of b, a"
    assert len(str(info.value).splitlines()) == 1  # the CLI prints it as one `error:` line
    # KeyError would show repr(message); the error prints as the message itself
    assert str(info.value) == info.value.args[0] and not str(info.value).startswith('"')
    # it survives pickling (DataLoader workers send exceptions to the main process)
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is UnknownNameError and str(back) == str(info.value) and back.unknown == ["x", "y"]
    sub = pickle.loads(pickle.dumps(UnknownModelError("model", ["q"], ["demo"])))
    assert type(sub) is UnknownModelError and str(sub) == "unknown model 'q': choose one of demo"
