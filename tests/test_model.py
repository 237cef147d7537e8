"""Model building: backbones, preprocessing inside the model, freezing, weights files, offline fallback."""

import numpy as np
import pytest

from src import UserError
from src.models import networks

BACKBONES = ["vgg16", "vgg19", "resnet50", "simple_cnn"]


def _digits(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_model_takes_raw_digits_in_every_form(compose_cfg, backbone):
    cfg = compose_cfg(f"backbone={backbone}", "backbone.weights=null")
    network = networks.build_model(cfg)
    net = network.model
    assert not network.fallbacks
    x = _digits()
    p_uint8 = net.predict(x, verbose=0)
    p_float = net.predict(x.astype(np.float32)[..., None], verbose=0)
    assert p_uint8.shape == (3, 10)
    np.testing.assert_allclose(p_uint8.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p_uint8, p_float, rtol=1e-5, atol=1e-6)


def test_a_call_without_training_is_inference_even_behind_the_resizing(compose_cfg):
    """Keras's image layers default to training=True; a model called without `training` (as an export
    or a plain model(x) calls it) must not run its dropout."""
    network = networks.build_model(compose_cfg("backbone=simple_cnn"))  # resized to 32x32x3, dropout 0.25
    assert "resize" in [layer.name for layer in network.features.layers]
    x = _digits(16).astype(np.float32)[..., None]
    inference = network.model.predict(x, verbose=0)
    np.testing.assert_allclose(network.model(x).numpy(), inference, rtol=1e-5, atol=1e-6)
    assert np.abs(network.model(x, training=True).numpy() - inference).max() > 1e-3  # dropout is there


def test_the_fast_baseline_works_on_the_digits_as_they_are(compose_cfg):
    """28x28, one gray channel: no resizing, no colour copies; still fed raw digits in every form."""
    network = networks.build_model(compose_cfg("+experiment=fast_baseline"))
    names = [layer.name for layer in network.features.layers]
    assert "resize" not in names and "gray_to_rgb" not in names
    backbone = network.features.get_layer("simple_cnn")
    assert tuple(backbone.input.shape[1:]) == (28, 28, 1) and tuple(backbone.output.shape[1:]) == (5, 5, 32)
    assert [layer.kernel_size for layer in backbone.layers if hasattr(layer, "kernel_size")] == [
        (5, 5),
        (3, 3),
    ]
    x = _digits()
    np.testing.assert_allclose(
        network.model.predict(x, verbose=0), network.model.predict(x[..., None] * 1.0, verbose=0), rtol=1e-5
    )
    with pytest.raises(UserError, match="kernel_sizes: 1 sizes for 2 blocks"):
        networks.build_model(compose_cfg("+experiment=fast_baseline", "backbone.network.kernel_sizes=[5]"))


def test_frozen_backbone_trains_only_the_top(compose_cfg):
    net = networks.build_model(compose_cfg("backbone.weights=null")).model
    sizes = networks.count_params(net)
    # the seed top on VGG16 at 32x32: Flatten(1x1x512) -> Dense(1000) -> Dense(10)
    assert sizes["trainable_params"] == 512 * 1000 + 1000 + 1000 * 10 + 10
    assert sizes["total_params"] > 14_000_000


def test_fine_tune_from_a_named_layer(compose_cfg):
    cfg = compose_cfg("backbone.weights=null", "backbone.fine_tune=block5_conv1")
    backbone, _ = networks.build_backbone(cfg.backbone, 32)
    trainable = [layer.name for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]
    with pytest.raises(UserError, match="no layer 'block9'"):
        networks.build_backbone(
            compose_cfg("backbone.weights=null", "backbone.fine_tune=block9").backbone, 32
        )


def test_fine_tune_all_trains_everything(compose_cfg):
    net = networks.build_model(compose_cfg("backbone.weights=null", "backbone.fine_tune=all")).model
    sizes = networks.count_params(net)
    assert sizes["trainable_params"] == sizes["total_params"]  # preprocessing holds constants only


@pytest.mark.parametrize("freeze", [True, False])
def test_fine_tuning_keeps_the_pretrained_batchnorm_statistics_unless_told(compose_cfg, freeze):
    """Fine-tuning trains the convolutions; BatchNormalization stays in inference mode (its moving
    statistics untouched) by default, and trains with the rest given backbone.freeze_batchnorm=false."""
    import keras

    cfg = compose_cfg(
        "backbone=resnet50", "backbone.weights=null", "backbone.fine_tune=conv5_block1_1_conv",
        f"backbone.freeze_batchnorm={freeze}",
    )  # fmt: skip
    network = networks.build_model(cfg)
    assert not network.frozen
    backbone = network.features.get_layer("resnet50")
    norm, conv = backbone.get_layer("conv5_block1_1_bn"), backbone.get_layer("conv5_block1_1_conv")
    early_norm = backbone.get_layer("conv2_block1_1_bn")  # before fine_tune: frozen either way
    assert norm.trainable is not freeze and conv.trainable and not early_norm.trainable
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in (*norm.weights, *conv.weights)}
    network.model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    digits = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)).astype("uint8")
    network.model.train_on_batch(digits, np.arange(8))
    changed = {
        w.path: not np.allclose(keras.ops.convert_to_numpy(w), before[w.path])
        for w in (*norm.weights, *conv.weights)
    }
    assert changed[conv.kernel.path]
    assert changed[norm.moving_mean.path] is not freeze
    assert changed[norm.moving_variance.path] is not freeze
    assert changed[norm.gamma.path] is not freeze


def test_weights_from_a_file(compose_cfg, tmp_path):
    import keras

    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(path)
    backbone, fallbacks = networks.build_backbone(compose_cfg(f"backbone.weights={path}").backbone, 32)
    assert not fallbacks
    for loaded, saved in zip(backbone.weights, source.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())


def test_weights_file_of_another_backbone_is_refused(compose_cfg, tmp_path):
    import keras

    path = tmp_path / "vgg19.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(path)
    with pytest.raises(UserError, match="does not fit vgg16"):
        networks.build_backbone(compose_cfg(f"backbone.weights={path}").backbone, 32)
    with pytest.raises(UserError, match="no such file"):
        networks.build_backbone(compose_cfg(f"backbone.weights={tmp_path / 'missing.h5'}").backbone, 32)


def test_offline_imagenet_weights_fall_back_to_random_init(compose_cfg, offline):
    backbone, fallbacks = networks.build_backbone(compose_cfg().backbone, 32)
    assert len(fallbacks) == 1 and fallbacks[0].startswith("weights:")
    assert "random initialisation" in fallbacks[0]
    assert not backbone.trainable


def test_offline_imagenet_weights_are_an_error_when_strict(compose_cfg, offline):
    with pytest.raises(UserError, match="strict=true"):
        networks.build_backbone(compose_cfg().backbone, 32, strict=True)


def test_simple_cnn_has_no_imagenet_weights(compose_cfg):
    with pytest.raises(UserError, match="no ImageNet weights"):
        networks.build_backbone(compose_cfg("backbone=simple_cnn", "backbone.weights=imagenet").backbone, 32)


def test_saved_model_is_self_contained(compose_cfg, tmp_path):
    """A .keras file loads and predicts with plain Keras, without this project's code."""
    import keras

    net = networks.build_model(compose_cfg("backbone=resnet50", "backbone.weights=null", "top=gap")).model
    net.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = _digits(4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), net.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_the_two_halves_share_the_whole_models_layers(compose_cfg):
    network = networks.build_model(compose_cfg("backbone.weights=null"))
    x = _digits(4)
    features = network.features.predict(x[..., None], verbose=0)
    assert features.shape == (4, 1, 1, 512)
    np.testing.assert_allclose(
        network.top.predict(features, verbose=0), network.model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert network.frozen
    assert not networks.build_model(compose_cfg("backbone=simple_cnn")).frozen


def test_mixed_precision_keeps_the_probabilities_in_float32(compose_cfg):
    import keras

    try:
        networks.set_precision("mixed_bfloat16")
        network = networks.build_model(compose_cfg("backbone.weights=null"))
        assert network.features.output.dtype == "bfloat16"
        assert network.model.output.dtype == "float32"
        p = network.model.predict(_digits(3), verbose=0)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    finally:
        networks.set_precision("float32")
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(UserError, match="training.precision"):
        networks.set_precision("float8")


def test_weights_digest_follows_the_weights(compose_cfg):
    a = networks.build_backbone(compose_cfg("backbone=simple_cnn").backbone, 32)[0]
    b = networks.build_backbone(compose_cfg("backbone=simple_cnn").backbone, 32)[0]
    assert networks.weights_digest(a) != networks.weights_digest(b)  # two random initialisations
    b.set_weights(a.get_weights())
    assert networks.weights_digest(a) == networks.weights_digest(b)
