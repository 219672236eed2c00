"""Hand-built Profiles for the pure stages (grouping, checks, rendering): no torch."""

from __future__ import annotations

from pytest_actbudget.results import LayerStats, Profile, TensorSpec


def layer(
    path: str,
    type_: str,
    *,
    flops: int = 0,
    activations: int = 0,
    params: int = 0,
    act_bytes: int = 0,
    leaf: bool = True,
    shape: tuple[int, ...] | None = None,
) -> LayerStats:
    return LayerStats(
        path=path,
        type=type_,
        output_shape=shape,
        output_dtype="float32" if shape else None,
        params=params,
        trainable=params,
        flops=flops,
        activations=activations,
        act_bytes=act_bytes,
        saved_bytes=0,
        calls=1,
        leaf=leaf,
    )


def toy_profile() -> Profile:
    """A three-child Sequential with numbers chosen by hand (inclusive, like fvcore):

    "0"   stem: "0.0" Conv2d 100 flops, "0.1" BatchNorm2d 10   -> 110
    "1"   body: "1.0" Conv2d 50, "1.1" Conv2d 30               ->  80
    "2"   Linear 5
    ""    root: 110 + 80 + 5 + 5 flops of a residual add in the root's own forward = 200
    Activations: 0.0 -> 40, 1.0 -> 20, 1.1 -> 20, 2 -> 10; root 90.
    Params: 0.0 -> 300, 0.1 -> 20, 1.0 -> 1000, 1.1 -> 2000, 2 -> 500; root 3820.
    """
    layers = [
        layer("", "Sequential", flops=200, activations=90, params=3820, act_bytes=360, leaf=False),
        layer("0", "Sequential", flops=110, activations=40, params=320, act_bytes=160, leaf=False),
        layer("0.0", "Conv2d", flops=100, activations=40, params=300, act_bytes=160),
        layer("0.1", "BatchNorm2d", flops=10, params=20),
        layer("1", "Sequential", flops=80, activations=40, params=3000, act_bytes=160, leaf=False),
        layer("1.0", "Conv2d", flops=50, activations=20, params=1000, act_bytes=80),
        layer("1.1", "Conv2d", flops=30, activations=20, params=2000, act_bytes=80),
        layer("2", "Linear", flops=5, activations=10, params=500, act_bytes=40),
    ]
    return Profile(
        model="Sequential",
        inputs=(TensorSpec((1, 3, 8, 8), "float32"),),
        counting="fvcore",
        layers=tuple(layers),
        uncounted_ops={"aten::add": 1},
    )
