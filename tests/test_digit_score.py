"""The digit score: a crop that does not look like a digit is not read as sure, and the classifier's
output stays 10 probabilities."""

import numpy as np
import pytest

from src.data import SAMPLE_PATH
from src.reading import segmentation
from src.reading.digit_score import DigitScore
from src.reading.reader import Reader

SAMPLE = np.load(SAMPLE_PATH)
# the probability at which the tests of the score call a crop confident: below the reader's own SURE, so
# that the suite's small model is confident of enough non-digits for the score to have something to refuse
PROBABLY = 0.9


def _crops(p, scores):
    image = np.zeros((28, 28), np.uint8)
    return [segmentation.DigitCrop(image, (i, 0, i + 1, 1), p[i], s) for i, s in enumerate(scores)]


def test_a_confident_crop_that_does_not_look_like_a_digit_is_unsure():
    reader = Reader()
    reader.digit_threshold = 0.5
    p = np.full((3, 10), 0.001)
    p[0, 3], p[1, 1], p[2, 7] = 0.991, 0.991, 0.991
    reading = reader.read(_crops(p, [0.9, 0.2, 0.7]))
    assert reading.number == "317" and reading.text == "3?7" and not reading.sure
    assert [d.looks_like_digit for d in reading.digits] == [True, False, True]
    assert reading.digits[1].probability > 0.99 and reading.digits[1].digit_score == pytest.approx(0.2)
    assert reading.message == "may not be a digit: digit 2"
    reading = reader.read(_crops(p, [0.9, 0.8, 0.7]))
    assert reading.text == "317" and reading.sure and reading.message == ""


def test_a_piece_cut_out_of_a_blob_needs_the_stricter_cut_threshold():
    """Two pieces of one letter or scribble can each read as a digit: a piece the segmentation cut out of
    a blob reads as sure only at the stricter threshold; a digit read whole needs the usual one."""
    reader = Reader()
    reader.digit_threshold, reader.cut_threshold = 0.1, 0.6
    p = np.full((2, 10), 0.001)
    p[0, 1], p[1, 7] = 0.991, 0.991
    whole = _crops(p, [0.9, 0.4])
    assert reader.read(whole).text == "17" and reader.read(whole).sure
    cut = [segmentation.DigitCrop(c.image, c.box, c.probabilities, c.digit_score, cut=True) for c in whole]
    reading = reader.read(cut)
    assert reading.number == "17" and reading.text == "1?" and not reading.sure
    assert reading.message == "may not be a digit: digit 2"
    reader.cut_threshold = None  # a model logged before the cut threshold: the usual one for every piece
    assert reader.read(cut).sure
    reader.cut_threshold = 0.05  # never below the usual threshold
    assert reader.threshold_for(cut[0]) == 0.1


def test_the_digit_score_round_trips_through_model_metadata():
    score = DigitScore([0.5, -1.25, 2.0], 0.1, 0.3, 0.98, {"digits": 3})
    kept = score.to_metadata()
    assert isinstance(kept["weights"], str)  # a few thousand weights stay one short string
    again = DigitScore.from_metadata({"digit_score": kept})
    assert again == score  # these weights are exact in float32
    features = np.array([[1.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    assert np.allclose(again.score(features), 1 / (1 + np.exp(-np.array([0.6, -4.9]))))
    assert DigitScore.from_metadata(None) is None and DigitScore.from_metadata({"other": 1}) is None


def test_a_digit_score_with_a_hidden_layer_round_trips_and_scores_through_its_relu_units():
    hidden_weights = [[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]]  # 3 features -> 2 units
    score = DigitScore(
        [2.0, -3.0], 0.5, 0.4, 0.98, {"digits": 3, "hidden_units": 2},
        hidden_weights=np.ravel(hidden_weights).tolist(), hidden_bias=[0.25, -0.5],
    )  # fmt: skip
    again = DigitScore.from_metadata({"digit_score": score.to_metadata()})
    assert again == score and again.hidden_bias == [0.25, -0.5] and again.cut_threshold is None
    score.cut_threshold, score.kept_cut = 0.75, 0.9
    again = DigitScore.from_metadata({"digit_score": score.to_metadata()})
    assert (again.cut_threshold, again.kept_cut) == (0.75, 0.9)
    features = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 2.0], [-1.0, 0.0, -1.0]])
    units = np.maximum(features @ np.asarray(hidden_weights) + [0.25, -0.5], 0.0)
    assert np.allclose(units, [[1.75, 1.5], [0.25, 1.5], [0.0, 0.0]])  # the last one: both cut to 0
    expected = 1 / (1 + np.exp(-(units @ [2.0, -3.0] + 0.5)))
    assert np.allclose(again.score(features), expected)
    assert np.isclose(again.score(features[2:])[0], 1 / (1 + np.exp(-0.5)))
    # a score without a hidden layer keeps its metadata as it was
    assert set(DigitScore([1.0], 0.0, 0.5, 0.98, {}).to_metadata()) == {
        "weights",
        "bias",
        "threshold",
        "kept",
        "fitted_on",
    }


def test_printed_letters_come_from_matplotlibs_fonts_and_are_none_that_digits_are_written_like():
    """The letters the score is fitted on: matplotlib's fonts (not Pillow's default, which draws the
    reading benchmark's letters), crops as a reader cuts them, never an O, an l, an S, ..."""
    from src.training import digit_score

    fonts = digit_score.letter_fonts()
    assert len(fonts) >= 10 and all(f.endswith(".ttf") for f in fonts)
    assert {"DejaVuSans.ttf", "cmr10.ttf"} <= {f.rsplit("/", 1)[-1] for f in fonts}
    crops = digit_score.printed_letters(np.random.default_rng(0), 12)
    assert len(crops) == 12 and all(c.shape == (28, 28) and c.max() > 100 for c in crops)
    assert not np.array_equal(crops[0], digit_score.printed_letters(np.random.default_rng(1), 1)[0])
    assert not set(digit_score.LIKE_DIGITS) & set("AEFHKMNPRVWXacdefhkmnprtuvwxy")


@pytest.mark.slow
def test_scribbles_and_smudges_read_sure_less_often_and_digits_still_do(digit_model_without_non_digits):
    """The model's digit score (fitted on its first read, kept in its run); on non-digits generated with
    another seed than the ones it was fitted on, fewer read sure than by the probabilities alone, and
    most test digits still look like digits. (A model trained on digits alone: one trained on non-digits
    too is rarely sure of them by its probabilities, tests/test_non_digits.py.)"""
    digit_model = digit_model_without_non_digits
    from src.apps.classifier import Classifier
    from src.data.pictures import non_digits

    classifier = Classifier(digit_model["model"], digit_model["uri"])
    assert classifier.digit_score is not None
    assert set(classifier.digit_score.to_metadata()) >= {
        "weights",
        "bias",
        "threshold",
        "kept",
        "fitted_on",
        "hidden_weights",
        "cut_threshold",
    }
    # the stricter threshold for cut pieces keeps about training.digit_score.keep_cut of the validation
    # digits, fewer than the usual one
    score = classifier.digit_score
    assert classifier.cut_threshold == score.cut_threshold > score.threshold
    assert score.kept_cut is not None and 0.85 <= score.kept_cut <= 0.95 < score.kept
    assert classifier.probabilities(SAMPLE["x_test"][:5]).shape == (5, 10)  # the output is unchanged

    others = non_digits(np.random.default_rng(2024), scribbles=200, smudges=100)
    crops = np.stack(
        [
            c.image
            for kind in ("scribbles", "smudges")
            for g in others[kind]
            for c in segmentation.digit_crops(g)
        ]
    )
    p, scores = classifier.classify(crops)
    confident = p.max(axis=1) >= PROBABLY  # the score's effect, at a probability many reach
    threshold = classifier.digit_threshold
    sure = confident & (scores >= threshold)
    # the probabilities alone are sure of many of them (9% on a CPU without AVX-512, 10% or more on others:
    # the arithmetic differs), enough for the score's effect to show
    assert confident.mean() >= 0.05 and confident.sum() >= 15, confident.mean()
    assert sure.mean() <= 0.7 * confident.mean(), (sure.mean(), confident.mean())

    digits = SAMPLE["x_test"][:300]
    _, scores = classifier.classify(digits)
    assert (scores >= threshold).mean() >= 0.9, (scores >= threshold).mean()


@pytest.mark.slow
def test_letters_in_a_font_the_score_never_saw_read_sure_less_often(digit_model_without_non_digits):
    """Letters that no digit is written like, in Pillow's default font (the score was fitted on letters
    in matplotlib's fonts): fewer are sure with the digit score than by the probabilities alone (a model
    trained on digits alone, as above)."""
    digit_model = digit_model_without_non_digits
    import string

    from PIL import Image, ImageDraw, ImageFont

    from src.apps.classifier import Classifier
    from src.training.digit_score import LIKE_DIGITS, reader_crops

    font = ImageFont.load_default(size=120)
    crops = []
    for letter in (c for c in string.ascii_letters if c not in LIKE_DIGITS):
        image = Image.new("L", (160, 160), 0)
        ImageDraw.Draw(image).text((30, 10), letter, fill=255, font=font)
        crops.append(max(reader_crops(np.asarray(image, np.float32)), key=lambda c: float(c.sum())))
    classifier = Classifier(digit_model["model"], digit_model["uri"])
    p, scores = classifier.classify(np.stack(crops))
    confident = p.max(axis=1) >= PROBABLY  # the score's effect, at a probability many reach
    sure = confident & (scores >= classifier.digit_threshold)
    assert confident.sum() >= 8, confident.sum()  # the probabilities alone are sure of many of them
    assert sure.sum() <= 0.6 * confident.sum(), (sure.sum(), confident.sum())


def test_the_crops_cut_while_the_model_trains_are_the_seeds_own():
    """The crops are cut in a thread during training: the same seed gives the same crops as a cut in
    the foreground, another seed other crops, and sample=0 cuts none (and fits no score)."""
    from src.data import mnist
    from src.training.digit_score import cut_crops, cut_in_background, fit_digit_score

    x, y = SAMPLE["x_train"], SAMPLE["y_train"]
    digits = mnist.Digits("sample", "test", x[:200], y[:200], x[200:300], y[200:300], x[:0], y[:0])
    background = cut_in_background(digits, 40, seed=3).result(timeout=60)
    foreground = cut_crops(digits, 40, seed=3)
    other = cut_crops(digits, 40, seed=4)
    assert background is not None and foreground is not None and other is not None
    assert background.digits.shape[1:] == (28, 28) and len(background.digits) >= 35
    np.testing.assert_array_equal(background.digits, foreground.digits)
    np.testing.assert_array_equal(background.validation, foreground.validation)
    assert background.non_digits.keys() == foreground.non_digits.keys() >= {"scribbles", "smudges"}
    for kind in background.non_digits:
        np.testing.assert_array_equal(background.non_digits[kind], foreground.non_digits[kind])
    assert not np.array_equal(other.digits, foreground.digits)
    assert cut_crops(digits, 0, seed=3) is None
    assert fit_digit_score(object(), None, keep=0.98) is None


@pytest.mark.parametrize("command", ["predict", "draw"])
def test_the_commands_read_as_sure_at_the_reader_s_own_threshold(command):
    """src.predict, src.draw and the reading model (which takes the reader's SURE) agree on what is sure:
    0.98, where of the numbers composed from validation digits that read sure, under 1% were wrong."""
    from omegaconf import OmegaConf

    from src.reading.reader import SURE
    from tests.conftest import CONF

    assert OmegaConf.load(CONF / "commands" / f"{command}.yaml").sure == SURE == 0.98


@pytest.mark.slow
def test_the_fit_runs_in_one_blas_thread_and_gives_the_threads_back(digit_model, monkeypatch):
    """OpenBLAS's waiting threads made the fit 5 to 10 times slower when two trainings ended at once on
    two cores; the fit (either kind) runs in one BLAS thread, and the process has its threads back after."""
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_info

    from src.data import mnist
    from src.training.digit_score import cut_crops, fit_digit_score

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    seen: list[set[int]] = []
    for estimator in (MLPClassifier, LogisticRegression):
        fit = estimator.fit

        def recording(self, *args, _fit=fit, **kwargs):
            seen.append(blas_threads())
            return _fit(self, *args, **kwargs)

        monkeypatch.setattr(estimator, "fit", recording)
    before = blas_threads()
    mlflow.set_tracking_uri(digit_model["uri"])
    model = mlflow.keras.load_model(digit_model["model"])
    x, y = SAMPLE["x_train"], SAMPLE["y_train"]
    digits = mnist.Digits("sample", "test", x[:200], y[:200], x[200:300], y[200:300], x[:0], y[:0])
    crops = cut_crops(digits, 60, seed=5)
    for hidden in (8, 0):
        assert fit_digit_score(model, crops, keep=0.98, hidden=hidden) is not None
    assert seen == [{1}, {1}]
    assert blas_threads() == before


def _reading_model_reads(digit_model: dict, reader_uri: str) -> dict:
    """What the registered reading model at `reader_uri` reads in a picture of 4072 (digits the
    classifier reads right and sure), as `mlflow models serve` would answer: the first reading."""
    import base64
    import io

    import mlflow
    import pandas as pd
    from PIL import Image

    from tests.test_predict import _compose_number, _correctly_read_digits

    sizes = [40, 56, 48, 64]
    digits = _correctly_read_digits(digit_model["model"], digit_model["uri"], [4, 0, 7, 2], sizes)
    buffer = io.BytesIO()
    Image.fromarray(_compose_number(digits, sizes)).save(buffer, format="PNG")
    picture = base64.b64encode(buffer.getvalue()).decode()
    mlflow.set_tracking_uri(digit_model["uri"])
    mlflow.set_registry_uri(digit_model["uri"])
    return mlflow.pyfunc.load_model(reader_uri).predict(pd.DataFrame({"image": [picture]}))[0]


@pytest.mark.slow
def test_a_training_leaves_the_digit_score_to_the_first_reader_who_keeps_it(tmp_path, monkeypatch):
    """training.digit_score.when=read (the default): the training fits no score and registers no reading
    model; the first reader fits the score, keeps it in the run (by the code's version) and registers the
    reading model, which reads a picture with it; the next reader takes the kept one without fitting."""
    import mlflow

    from src.apps.classifier import Classifier
    from src.training import digit_score
    from tests.conftest import _preset_model

    model = _preset_model(tmp_path, "training.digit_score.sample=300", read=False)
    client = mlflow.MlflowClient(model["uri"], model["uri"])
    mlflow.set_tracking_uri(model["uri"])
    info = mlflow.models.get_model_info(model["model"])
    assert "digit_score" not in (info.metadata or {})
    assert not client.search_model_versions("name = 'handwritten-digits-reader'")
    assert "digit_score_threshold" not in client.get_run(info.run_id).data.metrics
    kept = f"digit_score/{digit_score.score_version()}.json"
    assert kept not in [a.path for a in client.list_artifacts(info.run_id, "digit_score")]

    first = Classifier(model["model"], model["uri"])
    assert first.digit_score is not None and first.digit_threshold == first.digit_score.threshold
    assert first.digit_score.fitted_on["digits"] >= 280  # fitted on the run's own 300 digits
    assert kept in [a.path for a in client.list_artifacts(info.run_id, "digit_score")]
    assert client.get_run(info.run_id).data.metrics["digit_score_threshold"] == first.digit_score.threshold
    reader = client.get_model_version_by_alias("handwritten-digits-reader", "champion")
    assert reader.tags["classifier"] == "handwritten-digits/1"  # it wraps the champion, and follows it

    def no_fit(*args, **kwargs):
        raise AssertionError("the kept digit score was fitted again")

    monkeypatch.setattr(digit_score, "fit_digit_score", no_fit)
    again = Classifier(model["model"], model["uri"])
    assert (
        again.digit_score is not None and again.digit_score.to_metadata() == first.digit_score.to_metadata()
    )
    assert (
        len(client.search_model_versions("name = 'handwritten-digits-reader'")) == 1
    )  # not registered twice

    reading = _reading_model_reads(model, "models:/handwritten-digits-reader@champion")
    assert reading["number"] == "4072" and reading["sure"], reading
    assert all(
        d["digit_score"] is not None and d["digit_score"] >= first.digit_threshold for d in reading["digits"]
    )


@pytest.mark.slow
def test_a_model_whose_digit_score_was_fitted_at_training_reads_as_before(tmp_path, monkeypatch):
    """A model registered as models were before the score could wait for its reader (its score in its
    metadata, its reading model registered with it): read with that score, nothing fitted again."""
    import mlflow

    from src.apps.classifier import Classifier
    from src.training import digit_score
    from tests.conftest import _preset_model

    model = _preset_model(
        tmp_path, "training.digit_score.sample=300", "training.digit_score.when=training", read=False
    )
    mlflow.set_tracking_uri(model["uri"])
    info = mlflow.models.get_model_info(model["model"])
    assert {"weights", "threshold", "hidden_weights"} <= set(info.metadata["digit_score"])
    client = mlflow.MlflowClient(model["uri"], model["uri"])
    assert str(client.get_model_version_by_alias("handwritten-digits-reader", "champion").version) == "1"

    def no_fit(*args, **kwargs):
        raise AssertionError("a model with its digit score in its metadata was fitted another")

    monkeypatch.setattr(digit_score, "fit_digit_score", no_fit)
    classifier = Classifier(model["model"], model["uri"])
    stored = DigitScore.from_metadata(info.metadata)
    assert classifier.digit_score is not None and stored is not None
    assert classifier.digit_score.to_metadata() == stored.to_metadata()
    assert not client.list_artifacts(info.run_id, "digit_score")  # nothing kept beside it
    reading = _reading_model_reads(model, "models:/handwritten-digits-reader/1")
    assert reading["number"] == "4072" and reading["sure"], reading
    assert all(d["digit_score"] is not None for d in reading["digits"])


def test_a_run_logged_before_the_key_fitted_its_score_at_training_or_none():
    """Which runs left their digit score to their reader: only those that said so (when=read) and fit one."""
    from omegaconf import OmegaConf

    from src.training.digit_score import deferred

    def config(**settings):
        return OmegaConf.create({"training": {"digit_score": settings}})

    assert deferred(config(sample=2000, when="read"))
    assert not deferred(config(sample=2000, when="training"))
    assert not deferred(config(sample=2000))  # logged before the key: its score is in its metadata
    assert not deferred(config(sample=0, when="read"))
    assert not deferred(OmegaConf.create({"training": {}})) and not deferred(None)


def test_the_digit_score_s_crops_are_cut_once_and_again_when_what_they_depend_on_changes(
    tmp_path, monkeypatch
):
    """The crops of a digit score are kept in the crop cache: the same digits, sample and seed load
    them (the same crops); another seed, sample or digits cut new ones."""
    from src.data import mnist
    from src.training import digit_score

    x, y = SAMPLE["x_train"], SAMPLE["y_train"]
    digits = mnist.Digits("sample", "test", x[:200], y[:200], x[200:300], y[200:300], x[:0], y[:0])
    cut = digit_score.cut_crops(digits, 30, seed=3, cache_dir=tmp_path)
    assert cut is not None and len(list((tmp_path / "crops").glob("digit_score-*.npz"))) == 1
    calls = []
    real = digit_score.digits_as_read

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(digit_score, "digits_as_read", counted)
    again = digit_score.cut_crops(digits, 30, seed=3, cache_dir=tmp_path)
    assert again is not None and not calls  # a hit: nothing cut
    np.testing.assert_array_equal(again.digits, cut.digits)
    np.testing.assert_array_equal(again.validation, cut.validation)
    assert again.non_digits.keys() == cut.non_digits.keys()
    for kind in cut.non_digits:
        np.testing.assert_array_equal(again.non_digits[kind], cut.non_digits[kind])
    other_digits = mnist.Digits("sample", "test", x[50:250], y[50:250], x[200:300], y[200:300], x[:0], y[:0])
    for changed in ((digits, 30, 4), (digits, 31, 3), (other_digits, 30, 3)):
        calls.clear()
        digit_score.cut_crops(*changed, cache_dir=tmp_path)
        assert calls, changed
    assert len(list((tmp_path / "crops").glob("digit_score-*.npz"))) == 4
