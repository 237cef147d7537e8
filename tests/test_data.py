"""Data: the shipped sample, Keras-layout archives, limits, validation split, offline fallback."""

import numpy as np
import pytest

from src import UserError, data


def test_sample_is_real_balanced_mnist(compose_cfg):
    digits = data.load_digits(compose_cfg("data=mnist_sample", "data.val_split=0").data)
    assert digits.name == "mnist_sample" and not digits.fallbacks
    assert digits.x_train.shape == (4000, 28, 28) and digits.x_train.dtype == np.uint8
    assert digits.x_test.shape == (1000, 28, 28)
    assert np.bincount(digits.y_train).tolist() == [400] * 10
    assert np.bincount(digits.y_test).tolist() == [100] * 10
    assert digits.x_train.max() == 255 and digits.x_train.mean() < 60  # white digits on black


def test_limits_and_stratified_validation_split(compose_cfg):
    cfg = compose_cfg(
        "data=mnist_sample", "data.train_limit=500", "data.test_limit=100", "data.val_split=0.2"
    )
    digits = data.load_digits(cfg.data)
    assert digits.sizes() == {"train": 400, "validation": 100, "test": 100}
    assert len(np.unique(digits.y_val)) == 10
    again = data.load_digits(cfg.data)
    assert digits.digest == again.digest  # the split is seeded


def test_no_validation_split_is_no_validation_digits_and_a_training_refuses_it(compose_cfg):
    digits = data.load_digits(compose_cfg("data=mnist_sample", "data.val_split=0").data)
    assert len(digits.x_val) == 0 and len(digits.x_train) == 4000  # never the test digits
    from src import config

    with pytest.raises(UserError, match="data.val_split: 0 leaves no validation split"):
        config.validate_training(compose_cfg("data=mnist_sample", "data.val_split=0"))
    config.validate_training(compose_cfg("data=mnist_sample", "data.val_split=0", "training.enabled=false"))


def test_mnist_from_a_path(compose_cfg, tmp_path):
    sample = np.load(data.SAMPLE_PATH)
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=sample["x_train"][:300],
        y_train=sample["y_train"][:300],
        x_test=sample["x_test"][:50],
        y_test=sample["y_test"][:50],
    )
    digits = data.load_digits(compose_cfg("data=mnist", f"data.path={path}", "data.val_split=0.1").data)
    assert digits.name == "mnist" and digits.source == str(path)
    assert digits.sizes() == {"train": 270, "validation": 30, "test": 50}


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x_train": np.zeros((2, 28, 28))}, "lacks y_train"),
        (
            {
                "x_train": np.zeros((2, 32, 32)),
                "y_train": np.zeros(2),
                "x_test": np.zeros((1, 28, 28)),
                "y_test": np.zeros(1),
            },
            "must be \\(N, 28, 28\\)",
        ),
        (
            {
                "x_train": np.zeros((2, 28, 28)),
                "y_train": np.array([0, 12]),
                "x_test": np.zeros((1, 28, 28)),
                "y_test": np.zeros(1),
            },
            "outside 0-9",
        ),
    ],
)
def test_bad_archives_are_named(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=message):
        data.read_npz(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        data.read_npz(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(UserError, match="not an .npz archive"):
        data.read_npz(tmp_path / "text.npz")


def test_offline_full_mnist_falls_back_to_the_sample(compose_cfg, offline):
    assert data.download_mnist() is None
    digits = data.load_digits(compose_cfg("data=mnist").data)
    assert digits.name == "mnist_sample"
    assert len(digits.fallbacks) == 1 and "mnist_sample" in digits.fallbacks[0]


def test_offline_full_mnist_is_an_error_when_strict(compose_cfg, offline):
    with pytest.raises(UserError, match="strict=true"):
        data.load_digits(compose_cfg("data=mnist").data, strict=True)


def test_pipeline_keeps_digits_compact_and_augments_training_batches():
    import keras

    x = np.zeros((10, 28, 28), np.uint8)
    x[:, 10:18, 13:15] = 255  # a vertical bar
    y = np.arange(10)
    plain = next(iter(data.make_dataset(x[..., None], y, batch_size=4)))
    assert plain[0].dtype.name == "uint8" and tuple(plain[0].shape) == (4, 28, 28, 1)
    rotate = keras.Sequential([keras.layers.RandomRotation(0.25, fill_mode="constant", seed=1)])
    rotated = next(iter(data.make_dataset(x[..., None], y, batch_size=4, augment=rotate)))
    assert rotated[0].dtype.name == "float32"
    assert not np.allclose(rotated[0].numpy(), plain[0].numpy().astype(np.float32))


def test_pipelines_run_without_the_autotuner_and_keep_every_digit_in_order():
    x = np.arange(10 * 28 * 28, dtype=np.uint32).reshape(10, 28, 28).astype(np.uint8)
    y = np.arange(10)
    for ds in (data.make_dataset(x, y, batch_size=4), data.make_dataset(x, y, 4, shuffle=True)):
        assert ds.options().autotune.enabled is False
    predicted = data.batches(x, batch_size=4)
    assert predicted.options().autotune.enabled is False
    assert [len(b) for b in predicted] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in predicted]), x)


@pytest.mark.parametrize("seed", [0, 42])
@pytest.mark.parametrize("fraction", [0.1, 0.05])
@pytest.mark.parametrize("limit", [None, 300, 12])
def test_the_validation_split_is_scikit_learn_s_drawn_without_it(seed, fraction, limit):
    """The split drawn with numpy (no scikit-learn import at start-up) holds out the very digits that
    train_test_split did, stratified or not (12 digits: too few to stratify), so runs keep their data."""
    from sklearn.model_selection import train_test_split

    from src.data import SAMPLE_PATH, mnist

    sample = np.load(SAMPLE_PATH)
    x, y = sample["x_train"][:limit], sample["y_train"][:limit]
    stratify = y if mnist._stratifiable(y, fraction) else None
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=stratify
    )
    for ours, theirs in zip(
        mnist._split(x, y, fraction, seed), (x_train, y_train, x_val, y_val), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
