"""Training on generated non-digits toward even probabilities (src/training/non_digits.py): the loss,
the accuracy that leaves them out, the crops, and what a model trained with them reads."""

import numpy as np
import pytest

from src.data import SAMPLE_PATH
from src.training import non_digits
from src.training.non_digits import NOT_A_DIGIT

SAMPLE = np.load(SAMPLE_PATH)


def test_a_digit_is_scored_against_its_label_and_a_non_digit_against_even_probabilities():
    loss, accuracy = non_digits.loss_and_metric()
    sure_three = np.full((1, 10), 0.01, np.float32)
    sure_three[0, 3] = 0.91
    even = np.full((1, 10), 0.1, np.float32)
    labels = np.array([3, NOT_A_DIGIT])
    both = np.asarray(loss(labels, np.concatenate([sure_three, sure_three])))
    np.testing.assert_allclose(both[0], -np.log(0.91), rtol=1e-5)  # a digit: its own class's log
    np.testing.assert_allclose(both[1], -np.mean(np.log(sure_three)), rtol=1e-5)  # a non-digit: all ten
    # a non-digit's loss is least (log 10) where the probabilities are even, and more the surer they are
    np.testing.assert_allclose(np.asarray(loss(np.array([NOT_A_DIGIT]), even))[0], np.log(10), rtol=1e-5)
    assert both[1] > np.log(10) + 1
    # accuracy counts the digits alone, whatever a non-digit reads as
    accuracy.update_state(np.array([3, 5, NOT_A_DIGIT, NOT_A_DIGIT]), np.concatenate([sure_three] * 4))
    assert accuracy.name == "accuracy" and float(accuracy.result()) == pytest.approx(0.5)


def test_the_crops_are_the_seeds_own_and_digits_keep_their_labels():
    x, y = SAMPLE["x_train"][:120], SAMPLE["y_train"][:120]
    images, labels = non_digits.crops(x, y, count=50, as_read=60, seed=3)
    assert images.shape[1:] == (28, 28) and images.dtype == np.uint8 and len(images) == len(labels)
    assert (labels == NOT_A_DIGIT).sum() == 50  # 20 scribbles' and 10 smudges' crops, letters to 50
    assert 55 <= (labels != NOT_A_DIGIT).sum() <= 60 and set(labels[labels != NOT_A_DIGIT]) <= set(range(10))
    again, _ = non_digits.crops(x, y, count=50, as_read=60, seed=3)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, non_digits.crops(x, y, count=50, as_read=60, seed=4)[0])
    # a digit cut out as a reader cuts it still reads as its label to a model trained on MNIST: here, its
    # nearest training digit (by pixels, after the same cut) has the same label most of the time
    reference, reference_labels = non_digits.crops(
        SAMPLE["x_train"][1000:2000], SAMPLE["y_train"][1000:2000], 0, 1000, 0
    )
    digits = images[labels != NOT_A_DIGIT].reshape(-1, 784).astype(np.float32)
    distances = ((digits[:, None] - reference.reshape(-1, 784).astype(np.float32)[None]) ** 2).sum(-1)
    nearest = reference_labels[distances.argmin(1)]
    assert (nearest == labels[labels != NOT_A_DIGIT]).mean() >= 0.8


def test_the_crops_cut_in_another_process_are_those_cut_here():
    x, y = SAMPLE["x_train"][:200], SAMPLE["y_train"][:200]
    pending = non_digits.start(x, y, 30, 40, seed=5)
    assert pending is not None and pending.future is not None  # a process of its own
    images, labels, seconds = pending.result()
    here, here_labels, _ = non_digits.Pending(None, pending.arguments).result()
    np.testing.assert_array_equal(images, here)
    np.testing.assert_array_equal(labels, here_labels)
    assert seconds > 0 and (labels == NOT_A_DIGIT).sum() == 30
    assert non_digits.start(x, y, 0, 0, seed=5) is None


@pytest.mark.slow
def test_a_model_trained_with_non_digits_is_less_sure_of_them_and_still_reads_digits(tmp_path):
    """The fast_baseline preset on the offline sample, with and without non-digits (the same seed): the one
    trained with them gives scribbles and letters of another draw lower top probabilities, reads the
    validation digits about as well, and is saved with Keras's own loss (it loads without this project)."""
    from pathlib import Path

    import keras
    import mlflow
    from hydra import compose, initialize_config_dir

    from src.data.pictures import non_digits as pictures
    from src.reading import segmentation
    from src.train import train
    from src.training.digit_score import printed_letters

    from .conftest import CONF, new_store

    others = pictures(np.random.default_rng(77), scribbles=150, smudges=0)
    crops = [c.image for g in others["scribbles"] for c in segmentation.digit_crops(g)]
    crops += printed_letters(np.random.default_rng(78), 100)
    crops = np.stack(crops)
    found = {}
    for share in (0.0, 0.3):
        uri = new_store(tmp_path / str(share))
        overrides = [
            "+experiment=fast_baseline", "data=mnist_sample", "training.epochs=6", "training.verbose=0",
            "training.digit_score.sample=0", "tracking.reader_model=null", f"tracking.uri={uri}",
            f"training.non_digits.share={share}", f"training.non_digits.as_read={share}",
        ]  # fmt: skip
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            scores = train(compose(config_name="train", overrides=overrides))
        mlflow.set_tracking_uri(uri)
        folder = mlflow.artifacts.download_artifacts(
            "models:/handwritten-digits/1", dst_path=str(tmp_path / f"model{share}")
        )
        model = keras.models.load_model(next(Path(folder).rglob("*.keras")))  # no custom objects
        assert model.loss == "sparse_categorical_crossentropy"
        found[share] = (scores["val_accuracy"], model.predict(crops[..., None], verbose=0).max(1))
    (plain_accuracy, plain), (exposed_accuracy, exposed) = found[0.0], found[0.3]
    assert exposed.mean() < plain.mean() - 0.1, (exposed.mean(), plain.mean())
    sure, sure_before = (exposed >= 0.98).mean(), (plain >= 0.98).mean()
    assert sure < 0.5 * sure_before, (sure, sure_before)
    assert exposed_accuracy >= plain_accuracy - 0.02, (exposed_accuracy, plain_accuracy)


def _start_in_a_daemon(queue):
    x, y = SAMPLE["x_train"][:100], SAMPLE["y_train"][:100]
    pending = non_digits.start(x, y, 10, 20, seed=5)
    images, labels, _ = pending.result()
    queue.put((pending.future is None, images, labels))


def test_a_worker_that_may_not_start_processes_cuts_them_itself():
    """A launcher's daemonic worker cannot start a process: the crops are cut in the worker, the same."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_start_in_a_daemon, args=(queue,), daemon=True)
    worker.start()
    in_worker, images, labels = queue.get(timeout=120)
    worker.join(timeout=60)
    assert in_worker  # no process of its own
    x, y = SAMPLE["x_train"][:100], SAMPLE["y_train"][:100]
    here = non_digits.start(x, y, 10, 20, seed=5)
    assert here is not None
    expected, expected_labels, _ = non_digits.Pending(None, here.arguments).result()
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, expected_labels)


@pytest.mark.slow
def test_a_run_that_trains_the_top_on_cached_features_says_it_trains_without_them(
    store, compose_cfg, caplog, tmp_path
):
    import logging

    from src.train import train

    from .conftest import TINY

    caplog.set_level(logging.WARNING, logger="src.training.fit")
    overrides = [*TINY, "augmentation=none", "training.epochs=3", f"training.feature_cache_dir={tmp_path}"]
    scores = train(
        compose_cfg(*overrides, "training.non_digits.share=0.1", "training.non_digits.as_read=0.1")
    )
    assert scores["test_accuracy"] > 0
    assert any("non-digits: not trained on" in r.getMessage() for r in caplog.records)


def test_a_run_logged_before_the_key_existed_is_run_again_without_them(store, compose_cfg):
    """src.rerun removes a key the logged config lacks: such a run trains on digits alone."""
    from src import config
    from src.train import train

    from .conftest import TINY

    cfg = compose_cfg("backbone=simple_cnn", *TINY, "~training.non_digits")
    config.validate_training(cfg)
    assert train(cfg)["test_accuracy"] > 0


def test_the_crops_are_kept_and_cut_again_only_when_what_they_depend_on_changes(tmp_path):
    """A second start with the same digits, counts and seed loads the crops from the cache (the same
    ones, nothing cut); another seed, count, share of digits or other digits cut new ones."""
    x, y = SAMPLE["x_train"][:120], SAMPLE["y_train"][:120]
    first = non_digits.start(x, y, 20, 30, seed=3, cache_dir=tmp_path)
    assert first is not None and first.ready is None  # a miss: cut in another process
    images, labels, _ = first.result()
    assert len(list((tmp_path / "crops").glob("non_digits-*.npz"))) == 1
    second = non_digits.start(x, y, 20, 30, seed=3, cache_dir=tmp_path)
    assert second is not None and second.ready is not None and second.future is None  # a hit
    again, again_labels, seconds = second.result()
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(again_labels, labels)
    assert seconds == 0.0
    other = SAMPLE["x_train"][120:240], SAMPLE["y_train"][120:240]
    for changed in ((x, y, 20, 30, 4), (x, y, 21, 30, 3), (x, y, 20, 31, 3), (*other, 20, 30, 3)):
        pending = non_digits.start(*changed, cache_dir=tmp_path)
        assert pending is not None and pending.ready is None, changed[2:]
        pending.result()
    assert len(list((tmp_path / "crops").glob("non_digits-*.npz"))) == 5
    assert non_digits.start(x, y, 20, 30, seed=3).ready is None  # no cache_dir: always cut


def test_two_digits_written_touching_are_one_crop_labelled_not_a_digit(tmp_path):
    """A pair cut out as one crop goes in as a non-digit, so that a model doubts a 68 read as an 8."""
    x, y = SAMPLE["x_train"][:200], SAMPLE["y_train"][:200]
    images, labels = non_digits.crops(x, y, count=0, as_read=0, seed=3, pairs=40)
    assert len(images) == 40 and (labels == NOT_A_DIGIT).all()  # a pair that came apart is drawn again
    # two digits side by side are wider than tall: in the 28x28 field, lower than one digit alone

    def heights(crops: np.ndarray) -> float:
        return float(np.median([np.ptp(np.flatnonzero(image.max(axis=1) > 64)) + 1 for image in crops]))

    alone, _ = non_digits.crops(x, y, count=0, as_read=40, seed=3)
    assert heights(images) <= 16 and heights(alone) >= 19
    # started as training starts them: the pairs too, and the cache tells a count of pairs from another
    pending = non_digits.start(x, y, 0, 0, 3, tmp_path, pairs=40)
    assert pending is not None
    cut, cut_labels, _ = pending.result()
    assert len(cut) == 40 and (cut_labels == NOT_A_DIGIT).all()
    again = non_digits.start(x, y, 0, 0, 3, tmp_path, pairs=40)
    assert again is not None and again.ready is not None  # from the cache
    other = non_digits.start(x, y, 0, 0, 3, tmp_path, pairs=30)
    assert other is not None and other.ready is None and len(other.result()[0]) == 30


def test_digits_written_in_the_training_fonts_go_in_with_their_labels(tmp_path):
    """The training fonts are installed by make install and are none of the fonts the reader is measured
    on; their digits come cut out as a reader cuts a picture of one digit, each with its label, and the
    cache tells a count of them from another."""
    from src.data import other_hands, training_fonts
    from tests.conftest import ROOT

    measured = {**other_hands.HAND_FONTS, **other_hands.HELD_OUT_FONTS}.values()
    assert not {path for _, path, _ in measured} & {
        path for _, path, _ in training_fonts.TRAINING_FONTS.values()
    }
    assert not {package for package, _, _ in measured} & set(training_fonts.PACKAGES)
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("TRAINING_FONTS :="))
    assert sorted(line.split(":=")[1].split()) == training_fonts.PACKAGES
    assert training_fonts.available() == {n: p for n, (_, p, _) in training_fonts.TRAINING_FONTS.items()}

    x, y = SAMPLE["x_train"][:100], SAMPLE["y_train"][:100]
    images, labels = non_digits.crops(x, y, count=0, as_read=0, seed=3, fonts=40)
    assert images.shape == (40, 28, 28) and sorted(labels) == sorted(list(range(10)) * 4)
    # shaped as MNIST's digits are: the ink in the 20-pixel box, its centre of mass at the centre
    for image in images:
        rows, cols = np.flatnonzero(image.max(axis=1) > 64), np.flatnonzero(image.max(axis=0) > 64)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 22 and image.max() == 255
    pending = non_digits.start(x, y, 0, 0, 3, tmp_path, fonts=40)
    assert pending is not None and len(pending.result()[0]) == 40
    again = non_digits.start(x, y, 0, 0, 3, tmp_path, fonts=40)
    assert again is not None and again.ready is not None
    other = non_digits.start(x, y, 0, 0, 3, tmp_path, fonts=30)
    assert other is not None and other.ready is None and len(other.result()[0]) == 30


def test_what_a_training_asks_for_is_cut_once_and_the_next_start_finds_it(tmp_path):
    """start_for cuts what a training's config asks for (the command's and the bench's one way): the
    fast_baseline preset's non-digits, pairs, digits as read and the fonts' digits; a second start with
    the same config loads them from the cache."""
    from src.config import compose

    cfg = compose(["+experiment=fast_baseline", f"training.feature_cache_dir={tmp_path}"])
    x, y = SAMPLE["x_train"][:400], SAMPLE["y_train"][:400]
    first = non_digits.start_for(cfg.training, x, y)
    assert first is not None and first.ready is None
    images, labels, _ = first.result()
    shares = cfg.training.non_digits
    assert (labels < NOT_A_DIGIT).sum() == round(shares.as_read * 400) + round(shares.fonts * 400)
    assert (labels == NOT_A_DIGIT).sum() >= round(shares.share * 400) + round(shares.pairs * 400)
    again = non_digits.start_for(cfg.training, x, y)
    assert again is not None and again.ready is not None and np.array_equal(again.result()[0], images)
