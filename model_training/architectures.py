"""CNN architectures by name, and a multiply-accumulate counter."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers


def _conv_bn(x, filters: int, kernel: int, strides: int = 1, padding: str = "valid"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_seed() -> keras.Model:
    """The original design: three [Conv, BN] x2 + pool + dropout blocks, Dense 512 (~30 M MAC)."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for filters in (32, 64, 128):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="seed")


def _strided(name: str, first: int, second: int, middle: int, last: int) -> keras.Model:
    """Valid 3x3 convs with learned 3x3 stride-2 downsampling: 28 -> 26 -> 24 -> 12 (second's filters),
    12 -> 10 -> 8 -> 4 (middle's), a 4x4 conv to 1x1 (last's), dropout 0.4 after each stage, softmax."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = _conv_bn(inputs, first, 3)  # 26x26
    x = _conv_bn(x, second, 3)  # 24x24
    x = _conv_bn(x, second, 3, strides=2, padding="same")  # 12x12
    x = layers.Dropout(0.4)(x)
    x = _conv_bn(x, middle, 3)  # 10x10
    x = _conv_bn(x, middle, 3)  # 8x8
    x = _conv_bn(x, middle, 3, strides=2, padding="same")  # 4x4
    x = layers.Dropout(0.4)(x)
    x = _conv_bn(x, last, 4)  # 1x1
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build_compact() -> keras.Model:
    """The default (~11.7 M MAC, ~0.25 M params): 32, 32 filters, then 64, then 128.

    The layout follows the best single CNN of Deotte's Kaggle study (32C3-32C3-32C5S2-64C3-64C3-
    64C5S2-128C4, ~15 M MAC) with the two 5x5 stride-2 downsampling convs made 3x3: that cuts the
    total to 11.7 M MAC, and ONNX Runtime runs the 3x3 form faster per MAC (measured: 8,400-8,800
    images/s at batch 256 on 2 cores against 6,500-6,700 for a 10.7 M MAC variant that kept the 5x5
    downsampling with 24 filters in the first block, and 3,400 for the seed design).
    """
    return _strided("compact", 32, 32, 64, 128)


def build_wide() -> keras.Model:
    """compact with its MAC moved from the 24x24 stage to the later ones (~11.2 M MAC, ~0.40 M params).

    The first two convs get 16 and 32 filters instead of 32 and 32 (half of compact's largest cost);
    what that saves widens the 10x10-4x4 stage from 64 to 80 filters and the last conv from 128 to 192:
    more weights where strokes become shapes, for writers whose shapes MNIST lacks (docs/augmentation.md).
    """
    return _strided("wide", 16, 32, 80, 192)


def build_tiny() -> keras.Model:
    """A very small CNN for tests and smoke runs (trains in seconds, ~98% after one epoch)."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = _conv_bn(inputs, 8, 3)
    x = layers.MaxPooling2D(2)(x)
    x = _conv_bn(x, 16, 3)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny")


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "compact": build_compact,
    "seed": build_seed,
    "tiny": build_tiny,
    "wide": build_wide,
}
DEFAULT_ARCHITECTURE = "compact"


def build(name: str) -> keras.Model:
    """Build an architecture by name."""
    try:
        return ARCHITECTURES[name]()
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose from {sorted(ARCHITECTURES)}") from None


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates per image of the Conv2D and Dense layers (the rest is negligible)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += h * w * c_out * kh * kw * c_in
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)
