"""The same frozen backbone, minus the multiply-adds with zero padding.

At 32x32 input the last VGG block works on 2x2 feature maps and ResNet50's last stage on 1x1. A 3x3
'same' convolution there mostly multiplies padding zeros (5/9 of its multiply-adds at 2x2, 8/9 at 1x1),
and the convolution kernels run such tiny maps far below the machine's matrix-multiply rate. On an h x w
map the convolution is a linear map from the h*w*c_in inputs to the h*w*c_out outputs, so it is one
matrix product whose matrix holds the kernel's taps (and zeros where a tap would read padding).

`fast_clone` rebuilds a frozen network with those convolutions computed that way and every other layer
shared with the original: the same function up to float rounding. It is used where the backbone does
not train: computing cached features, and a frozen backbone's forward pass in training and evaluation.
The saved model keeps the standard layers, so anyone can load it.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def conv_matrix(kernel: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (h*w*c_in, h*w*c_out) matrix of a stride-1 'same' convolution on an h x w map."""
    kh, kw, c_in, c_out = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2  # TensorFlow's 'same' padding before the map
    matrix = np.zeros((height, width, c_in, height, width, c_out), dtype=kernel.dtype)
    for i in range(height):  # output row and column
        for j in range(width):
            for p in range(height):  # input row and column
                for q in range(width):
                    a, b = p - i + top, q - j + left
                    if 0 <= a < kh and 0 <= b < kw:
                        matrix[p, q, :, i, j, :] = kernel[a, b]
    return matrix.reshape(height * width * c_in, height * width * c_out)


def _small_map(layer: keras.Layer, inputs: Any) -> tuple[int, int] | None:
    """(h, w) when `layer` is a convolution cheaper as a matrix product on these inputs, else None."""
    if type(layer) is not keras.layers.Conv2D:
        return None
    shape = inputs.shape
    if (
        len(shape) != 4
        or layer.data_format != "channels_last"
        or layer.padding != "same"
        or tuple(layer.strides) != (1, 1)
        or tuple(layer.dilation_rate) != (1, 1)
        or layer.groups != 1
        or None in shape[1:3]
    ):
        return None
    height, width = int(shape[1]), int(shape[2])
    kh, kw = layer.kernel_size
    # the matrix product costs (h*w)^2 * c_in * c_out, the convolution h*w*kh*kw * c_in * c_out
    return (height, width) if height * width < kh * kw else None


class MatmulConv(keras.layers.Layer):
    """A frozen Conv2D on a fixed small map, computed as one matrix product (inference only)."""

    def __init__(self, conv: keras.layers.Conv2D, height: int, width: int) -> None:
        super().__init__(name=f"{conv.name}_as_matmul", dtype=conv.dtype_policy, trainable=False)
        kernel = keras.ops.convert_to_numpy(conv.kernel).astype(np.float32)
        self.height, self.width, self.filters = height, width, conv.filters
        # plain tensors, not weights: derived from the frozen kernel, never trained or saved
        self._matrix = keras.ops.convert_to_tensor(conv_matrix(kernel, height, width))
        bias = keras.ops.convert_to_numpy(conv.bias) if conv.use_bias else np.zeros(conv.filters)
        self._bias = keras.ops.convert_to_tensor(np.tile(bias.astype(np.float32), height * width))
        self.activation = conv.activation

    def call(self, inputs: Any) -> Any:
        flat = keras.ops.reshape(inputs, (-1, self._matrix.shape[0]))
        matrix = keras.ops.cast(self._matrix, flat.dtype)
        out = keras.ops.matmul(flat, matrix) + keras.ops.cast(self._bias, flat.dtype)
        return self.activation(keras.ops.reshape(out, (-1, self.height, self.width, self.filters)))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.height, self.width, self.filters)


def fast_clone(network: keras.Model) -> tuple[keras.Model, list[str]]:
    """`network` (frozen) with its small-map convolutions as matrix products; the names replaced."""
    replaced: list[str] = []

    def call(layer: keras.Layer, *args: Any, **kwargs: Any) -> Any:
        size = _small_map(layer, args[0]) if args else None
        if size is None:
            return layer(*args, **kwargs)
        replaced.append(layer.name)
        return MatmulConv(layer, *size)(*args, **kwargs)

    clone = keras.models.clone_model(
        network, clone_function=lambda layer: layer, call_function=call, recursive=True
    )
    return clone, replaced
