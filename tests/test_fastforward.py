"""A frozen backbone's fast twin: the same function as Keras's layers, with fewer multiply-adds."""

import numpy as np
import pytest

from src.models import networks
from src.models.frozen_forward import conv_matrix, fast_clone


@pytest.mark.parametrize("height,width,kernel", [(1, 1, 3), (2, 2, 3), (1, 2, 3), (2, 3, 5), (4, 4, 3)])
def test_a_convolution_is_its_matrix(height, width, kernel):
    import keras

    rng = np.random.default_rng(0)
    conv = keras.layers.Conv2D(5, kernel, padding="same", activation="relu")
    x = rng.standard_normal((3, height, width, 4)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(conv(x))
    matrix = conv_matrix(keras.ops.convert_to_numpy(conv.kernel), height, width)
    bias = np.tile(keras.ops.convert_to_numpy(conv.bias), height * width)
    got = np.maximum(x.reshape(3, -1) @ matrix + bias, 0).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "backbone,replaced",
    [
        ("vgg16", ["block5_conv1", "block5_conv2", "block5_conv3"]),  # 2x2 maps at 32x32 input
        (
            "resnet50",
            [f"conv4_block{i}_2_conv" for i in range(1, 7)] + [f"conv5_block{i}_2_conv" for i in (1, 2, 3)],
        ),
        ("simple_cnn", []),  # nothing small enough: the network stays as it is
    ],
)
def test_the_fast_twin_computes_the_same_features(compose_cfg, backbone, replaced):

    network = networks.build_model(compose_cfg(f"backbone={backbone}", "backbone.weights=null"))
    fast, names = fast_clone(network.features)
    assert names == replaced
    assert (network.fast_features is not None) == bool(replaced)
    x = np.random.default_rng(1).integers(0, 256, (16, 28, 28, 1)).astype(np.uint8)
    expected = network.features.predict(x, verbose=0)
    np.testing.assert_allclose(
        fast.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )
    # the whole fast model shares the top: both classify alike
    np.testing.assert_allclose(
        network.trainee.predict(x, verbose=0), network.model.predict(x, verbose=0), rtol=1e-4, atol=1e-5
    )


def test_a_trainable_backbone_has_no_fast_twin(compose_cfg):

    network = networks.build_model(compose_cfg("backbone.weights=null", "backbone.fine_tune=block5_conv1"))
    assert network.fast_features is None and network.trainee is network.model


def test_the_fast_twin_follows_mixed_precision(compose_cfg):

    networks.set_precision("mixed_bfloat16")
    try:
        network = networks.build_model(compose_cfg("backbone.weights=null"))
        x = np.random.default_rng(2).integers(0, 256, (4, 28, 28, 1)).astype(np.uint8)
        assert network.fast_features.output.dtype == "bfloat16"
        p = network.trainee.predict(x, verbose=0)
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, network.model.predict(x, verbose=0), atol=0.05)
    finally:
        networks.set_precision("float32")
