"""The randomisation schedule: groups, order, what changes at each step, exact restore, seeds, init schemes."""
from __future__ import annotations

import pytest
import torch

from retcore.models import HEAD_INIT_STD
from retcore.sanity import (
    SanityError,
    layer_groups,
    randomization,
    randomized,
    randomized_copy,
    reinitialise,
    schedule,
)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(model, before) -> set[str]:
    """State keys whose values differ from ``before`` (integer counters ignored)."""
    now = model.state_dict()
    return {k for k, v in before.items() if v.is_floating_point() and not torch.equal(now[k], v)}


def _group_keys(model, floating: bool = True) -> dict[str, set[str]]:
    """State keys of each group (only floating-point ones unless ``floating=False``)."""
    return {g.name: {k for k, v in g.tensors(model).items() if v.is_floating_point() or not floating}
            for g in layer_groups(model)}


@pytest.mark.parametrize("depth,dim,heads", [(2, 64, 4), (3, 128, 4), (4, 192, 3)])
@pytest.mark.parametrize("pool", ["avg", "token"])
def test_groups_run_from_the_head_down_to_the_stem(make_model, depth, dim, heads, pool):
    model = make_model(depth=depth, dim=dim, heads=heads, pool=pool)
    groups = layer_groups(model)
    assert [g.name for g in groups] == ["head", *[f"blocks.{i}" for i in reversed(range(depth))], "patch_embed"]
    assert groups[0].modules == (("head", "fc_norm") if pool == "avg" else ("head", "norm"))
    assert groups[-1].modules == ("patch_embed",) and groups[-1].parameters == ("pos_embed", "cls_token")
    keys = _group_keys(model, floating=False)
    every = set().union(*keys.values())
    assert every == {k for k, v in model.state_dict().items()}  # each weight belongs to one group
    assert sum(map(len, keys.values())) == len(every)


def test_schedules_cascade_and_isolate(make_model):
    model = make_model(depth=3)
    names = ["head", "blocks.2", "blocks.1", "blocks.0", "patch_embed"]
    cascade = schedule(model, "cascading")
    assert [s.layer for s in cascade] == names and [s.index for s in cascade] == list(range(5))
    assert [s.randomized for s in cascade] == [tuple(names[: k + 1]) for k in range(5)]
    assert [s.randomized for s in schedule(model, "independent")] == [(n,) for n in names]
    with pytest.raises(SanityError, match="unknown randomisation mode 'nope'"):
        schedule(model, "nope")


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_cascading_changes_the_randomised_groups_and_nothing_else(make_model, stem):
    model = make_model(depth=3, stem=stem)
    trained = _state(model)
    keys = _group_keys(model)
    seen = []
    with randomization(model, "cascading", seed=3) as walk:
        for step in walk:
            seen.append(step.layer)
            expected = set().union(*(keys[g] for g in step.randomized))
            changed = _changed(model, trained)
            assert changed == expected, step  # every randomised tensor moved, no other one did
    assert seen == ["head", "blocks.2", "blocks.1", "blocks.0", "patch_embed"]
    assert not _changed(model, trained)  # restored exactly
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_independent_touches_exactly_one_group(make_model):
    model = make_model(depth=2)
    trained = _state(model)
    keys = _group_keys(model)
    with randomization(model, "independent") as walk:
        for step in walk:
            assert _changed(model, trained) == keys[step.layer]
    assert not _changed(model, trained)


def test_cascading_keeps_each_groups_draw_and_matches_independent(make_model):
    model = make_model(depth=2)
    draws = {}
    with randomization(model, "independent", seed=5) as walk:
        for step in walk:
            draws[step.layer] = {k: v.clone() for k, v in layer_groups(model)[step.index].tensors(model).items()}
    with randomization(model, "cascading", seed=5) as walk:
        for step in walk:
            for name in step.randomized:  # earlier groups keep the values drawn when they were randomised
                group = next(g for g in layer_groups(model) if g.name == name)
                assert all(torch.equal(v, draws[name][k]) for k, v in group.tensors(model).items())


def test_steps_limit_the_walk(make_model):
    model = make_model(depth=3)
    with randomization(model, "cascading", steps=[1, 3]) as walk:
        assert [s.index for s in walk] == [1, 3]
    with randomization(model, "independent", steps=[]) as walk:
        assert list(walk) == []


def test_restored_after_an_exception_or_a_break(make_model):
    model = make_model(depth=2)
    trained = _state(model)
    with pytest.raises(RuntimeError, match="boom"):
        with randomization(model, "cascading") as walk:
            for step in walk:
                if step.index == 2:
                    raise RuntimeError("boom")
    assert not _changed(model, trained)
    with randomization(model, "independent") as walk:
        for _ in walk:
            break
    assert not _changed(model, trained)
    with pytest.raises(RuntimeError):
        with randomized(model, ["head", "blocks.0"]):
            assert _changed(model, trained)
            raise RuntimeError
    assert not _changed(model, trained)


def test_seeded_and_device_free(make_model):
    a, b = make_model(depth=2), make_model(depth=2, seed=9)  # different trained weights
    reinitialise(a, "blocks.1", seed=1)
    reinitialise(b, "blocks.1", seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.blocks[1].parameters(), b.blocks[1].parameters()))
    reinitialise(b, "blocks.1", seed=2)
    assert not torch.equal(a.blocks[1].attn.qkv.weight, b.blocks[1].attn.qkv.weight)


def test_randomized_copy_leaves_the_model_alone(make_model):
    model = make_model(depth=2)
    trained = _state(model)
    copy = randomized_copy(model, ["head", "patch_embed"], seed=0)
    assert not _changed(model, trained)
    assert _changed(copy, trained) == _group_keys(model)["head"] | _group_keys(model)["patch_embed"]
    with pytest.raises(SanityError, match="unknown layer group 'blocks.7'"):
        randomized_copy(model, ["blocks.7"])


def test_each_layer_gets_its_own_init_scheme(make_model):
    model = make_model(depth=2, dim=192, heads=3, pool="avg", stem="conv", classes=64)
    for group in layer_groups(model):
        reinitialise(model, group, seed=0)
    assert model.head.weight.std().item() == pytest.approx(HEAD_INIT_STD, rel=0.1)
    assert torch.count_nonzero(model.head.bias) == 0
    qkv = model.blocks[0].attn.qkv
    assert qkv.weight.std().item() == pytest.approx(0.02, rel=0.05) and torch.count_nonzero(qkv.bias) == 0
    for norm in (model.fc_norm, model.blocks[1].norm1):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.count_nonzero(norm.bias) == 0
    assert model.pos_embed.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.cls_token.abs().max().item() < 1e-5
    bn = model.patch_embed.proj[1]  # the conv stem's BatchNorm: running statistics reset too
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var)) and torch.count_nonzero(bn.running_mean) == 0
    conv = model.patch_embed.proj[0]
    bound = 1 / conv.weight[0].numel() ** 0.5  # PyTorch's kaiming_uniform(a=sqrt(5)) bound
    assert conv.weight.abs().max().item() <= bound and conv.weight.std().item() > bound / 3


def test_not_a_vit_is_refused():
    from retcore.explain import UnsupportedModelError

    with pytest.raises(UnsupportedModelError):
        layer_groups(torch.nn.Linear(3, 3))
