"""Benchmark: the least time any exact ``lrp`` can take, as a multiple of a plain forward pass.

Run by hand: ``.venv/bin/python bench/lrp_floor.py [--model vit_base] [--batch 8] [--device auto]
[--repeats 3]``.

``lrp`` (Chefer et al.'s transformer attribution) needs, per explained batch, a forward pass, the
gradient of the target logit down to the attention maps of blocks ``0..L-1``, and the alpha = 1,
beta = 0 relevance down to the same attention maps. Whatever way the two backward sweeps are
organised (two passes, or one sweep that carries the gradient and the relevance together), the
matrix products of the linear layers cannot be avoided:

* forward: ``x W^T + b`` per linear layer (part of the forward pass);
* gradient: ``G W`` per linear layer above block 0's attention product (block 0: ``fc2``, ``fc1``,
  ``proj``; every other block also ``qkv``);
* relevance: ``|x| |W|^T`` (the positive pre-activations) and ``S [W, |W|]`` per linear layer of the
  same set (see :func:`retcore.explain.rules.linear_ab`; its textbook form needs four products).

This script times, in one run and interleaved: a plain no-grad forward pass (F), ``relevance(model,
images, 'lrp')`` as shipped (L), and the gradient and relevance products above alone, each on
tensors of the real shapes (B x tokens rows). It prints ``L / F`` and the floor ``(F + gradient
products + relevance products) / F``: a lower bound for any exact implementation (it leaves out the
attention-sized products, softmax, LayerNorm and GELU of both sweeps, which a real one also does).
The gap ``L - floor`` is the most that fusing the two sweeps could save.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.explain import FORWARD, _run, _setup, add_setup_options  # noqa: E402
from retcore.explain.rules.weights import weight_block  # noqa: E402


def _linears(model: nn.Module) -> list[nn.Linear]:
    """The linear layers both backward sweeps of ``lrp`` cross (start_layer 0), from the top block down."""
    layers: list[nn.Linear] = []
    blocks = list(model.blocks)  # type: ignore[arg-type]
    for index in range(len(blocks) - 1, -1, -1):
        blk = blocks[index]
        layers += [blk.mlp.fc2, blk.mlp.fc1, blk.attn.proj]
        if index > 0:
            layers.append(blk.attn.qkv)
    return layers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _products(layers: list[nn.Linear], rows: int, device: torch.device) -> tuple[Callable[[], None], Callable[[], None]]:
    """Two closures: the gradient products and the relevance products of ``layers`` on ``rows`` rows."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    data = []
    for layer in layers:
        n_out, n_in = layer.weight.shape
        block = weight_block(layer, torch.float32)  # [W, |W|, 2 EPS - b], as linear_ab uses it
        x1 = torch.randn(rows, n_in + 1, generator=gen).to(device)  # [|x|, 1]
        s = torch.randn(rows, n_out, generator=gen).to(device)
        data.append((block, n_in, x1, s, torch.empty(rows, n_out, device=device),
                     torch.empty(rows, 2 * n_in, device=device), torch.empty(rows, n_in, device=device)))

    def gradient() -> None:
        for block, n_in, _x1, s, _z, _g, gi in data:
            torch.mm(s, block[:, :n_in], out=gi)  # G W

    def relevance() -> None:
        for block, n_in, x1, s, z, g, _gi in data:
            torch.mm(x1, block[:, n_in:].t(), out=z)  # |x| |W|^T + 2 EPS - b
            torch.mm(s, block[:, :2 * n_in], out=g)  # [S W, S |W|]

    return gradient, relevance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_options(parser)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.bf16 = False
    model, images, device = _setup(args)
    with torch.no_grad():
        tokens = model.forward_features(images).shape[1]
    gradient, relevance = _products(_linears(model), args.batch * tokens, device)

    def timed(fn: Callable[[], object]) -> float:
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - start

    calls = {
        "forward": lambda: _run(FORWARD, model, images, device, False),
        "lrp": lambda: _run("lrp", model, images, device, False),
        "gradient products": gradient,
        "relevance products": relevance,
    }
    for fn in calls.values():  # warm-up (fills the |W| cache)
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, fn in calls.items():
            times[name].append(timed(fn))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    f = med["forward"]
    print(f"model {args.model}, {args.img_size}px, batch {args.batch} ({tokens} tokens), device {device}, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} rounds, {len(_linears(model))} linear layers")
    for name, t in med.items():
        print(f"{name:<19} {t:8.3f} s  {t / f:6.2f}x forward")
    floor = (f + med["gradient products"] + med["relevance products"]) / f
    print(f"floor of any exact lrp: {floor:.2f}x forward (lrp as shipped: {med['lrp'] / f:.2f}x; "
          f"at most {med['lrp'] / f - floor:.2f}x forward left to save by fusing the sweeps)")


if __name__ == "__main__":
    main()
