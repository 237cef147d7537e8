"""data=folder: a folder of pictures of one's own digits, read as the reader reads a crop, trained on,
registered and evaluated; and the folders it refuses."""

import logging

import mlflow
import numpy as np
import pytest
from PIL import Image

from src import UserError
from src.data import SAMPLE_PATH, read_npz
from src.data.boxy_hand import write_folder
from src.reading import folder
from src.reading.folder import load_data
from src.reading.one_digit import digit_picture
from src.reading.segmentation import decode, read_line
from tests.conftest import run_cli

FAST = ("+experiment=fast_baseline", "training.verbose=0", "training.precision=float32")


def _sample(count: int, step: int = 1):
    arrays = read_npz(SAMPLE_PATH)
    return arrays["x_train"][: count * step : step], arrays["y_train"][: count * step : step]


def write_digits(root, count: int, step: int = 1, formats=(".png", ".jpg", ".bmp", ".tif")):
    """MNIST sample digits as a user's pictures: larger, dark on light or light on dark, in every format."""
    images, labels = _sample(count, step)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        size = 28 * (1 + index % 3)
        picture = Image.fromarray(255 - image if index % 2 else image).resize((size, size))
        picture.save(root / str(label) / f"{index}{formats[index % len(formats)]}")
    return images, labels


def folder_cfg(compose_cfg, path, *overrides):
    return compose_cfg("data=folder", f"data.path={path}", *overrides).data


def test_a_picture_of_one_digit_is_cropped_as_the_reader_crops_it(tmp_path):
    image = np.full((90, 70), 235, np.uint8)
    image[10:80, 10:60] = 255 - np.asarray(Image.fromarray(_sample(1)[0][0]).resize((50, 70)))
    Image.fromarray(image).save(tmp_path / "one.png")
    data = (tmp_path / "one.png").read_bytes()

    def classify(crops):
        return np.full((len(crops), 10), 0.1), None

    crops = read_line(decode(data), classify)
    assert len(crops) == 1
    np.testing.assert_array_equal(digit_picture(data), crops[0].image)


def test_a_folder_is_read_whole_in_any_format_size_and_polarity(tmp_path, compose_cfg):
    images, labels = write_digits(tmp_path, 120)
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "_drawings").mkdir()
    digits = load_data(folder_cfg(compose_cfg, tmp_path), strict=True)
    assert digits.name == "folder" and digits.source == str(tmp_path)
    assert digits.sizes() == {"train": 97, "validation": 11, "test": 12}
    together = np.concatenate([digits.y_train, digits.y_val, digits.y_test])
    assert sorted(together.tolist()) == sorted(labels.tolist())
    assert digits.x_train.dtype == np.uint8 and digits.x_train.shape[1:] == (28, 28)
    # white on black, centred: what the reader gives the model, whichever polarity the picture had
    assert digits.x_train[:, 0, :].mean() < 5 and digits.x_train[:, 10:18, 10:18].mean() > 40
    # seeded: the same split and digest again, another seed another split
    assert load_data(folder_cfg(compose_cfg, tmp_path)).digest == digits.digest
    other = load_data(folder_cfg(compose_cfg, tmp_path, "data.split_seed=1"))
    assert other.digest != digits.digest


def test_train_and_test_folders_are_kept(tmp_path, compose_cfg):
    write_digits(tmp_path / "train", 60)
    write_digits(tmp_path / "test", 20, step=7)
    digits = load_data(folder_cfg(compose_cfg, tmp_path, "data.val_split=0.25"))
    assert digits.sizes() == {"train": 45, "validation": 15, "test": 20}
    every = load_data(folder_cfg(compose_cfg, tmp_path), evaluation=True)  # an evaluation: test/ alone
    assert every.sizes() == {"train": 0, "validation": 0, "test": 20}


def test_many_pictures_are_read_in_processes_the_same(tmp_path, compose_cfg, monkeypatch):
    write_digits(tmp_path, 60)
    paths = sorted(str(p) for p in tmp_path.rglob("*.*"))
    alone, read_alone = folder.read_pictures(paths, strict=True, workers=1)
    monkeypatch.setattr(folder, "IN_PROCESS", 10)
    monkeypatch.setattr(folder, "CHUNK", 16)
    together, read_together = folder.read_pictures(paths, strict=True, workers=2)
    np.testing.assert_array_equal(alone, together)
    assert read_alone.all() and read_together.all()


def test_mnist_is_mixed_into_training_and_validation_only(tmp_path, compose_cfg):
    write_digits(tmp_path, 100)
    cfg = folder_cfg(compose_cfg, tmp_path, "data.mix_mnist=0.75", f"data.mnist_path={SAMPLE_PATH}")
    mixed = load_data(cfg)
    alone = load_data(folder_cfg(compose_cfg, tmp_path))
    assert mixed.name == "folder+mnist" and str(SAMPLE_PATH) in mixed.source
    assert len(mixed.y_train) == 4 * len(alone.y_train) and len(mixed.y_val) == 4 * len(alone.y_val)
    np.testing.assert_array_equal(mixed.x_test, alone.x_test)


def _truncated(root):
    write_digits(root, 40)
    broken = root / "3" / "broken.png"
    broken.write_bytes(next((root / "1").glob("*.png")).read_bytes()[:60])
    return broken


def _one_digit_only(root):
    write_digits(root, 60, formats=(".png",))
    for sub in root.iterdir():
        if sub.name != "7":
            for picture in sub.iterdir():
                picture.unlink()
            sub.rmdir()


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda root: root.mkdir(), "holds no pictures"),
        (lambda root: (write_digits(root, 30), (root / "10").mkdir()), "/10: not a digit folder"),
        (lambda root: (write_digits(root, 30), (root / "a").mkdir()), "/a: not a digit folder"),
        (_one_digit_only, r"of one digit only \(7\)"),
    ],
)
def test_bad_folders_are_named_in_one_line(tmp_path, compose_cfg, make, message):
    root = tmp_path / "digits"
    make(root)
    with pytest.raises(UserError, match=message) as refused:
        load_data(folder_cfg(compose_cfg, root))
    assert "\n" not in str(refused.value)


def test_one_digit_with_mnist_mixed_in_trains(tmp_path, compose_cfg):
    _one_digit_only(tmp_path)
    cfg = folder_cfg(compose_cfg, tmp_path, "data.mix_mnist=0.9", f"data.mnist_path={SAMPLE_PATH}")
    digits = load_data(cfg)  # not refused: the sevens beside MNIST's digits
    assert digits.name == "folder+mnist" and len(set(digits.y_train.tolist())) > 5


def test_an_unreadable_picture_is_skipped_and_counted_or_refused_when_strict(tmp_path, compose_cfg, caplog):
    broken = _truncated(tmp_path)
    with caplog.at_level(logging.WARNING, logger="src.reading.folder"):
        digits = load_data(folder_cfg(compose_cfg, tmp_path))
    assert sum(digits.sizes().values()) == 40
    assert "1 of 41 pictures skipped" in caplog.text and str(broken) in caplog.text
    with pytest.raises(UserError, match=f"{broken}: .*data.strict=true"):
        load_data(folder_cfg(compose_cfg, tmp_path, "data.strict=true"))


@pytest.mark.parametrize("case", ["empty", "not_a_digit", "truncated_strict", "one_class"])
def test_the_commands_refuse_bad_folders_with_exit_2_and_write_nothing(tmp_path, case):
    root = tmp_path / "digits"
    root.mkdir()
    extra = []
    if case == "not_a_digit":
        write_digits(root, 20)
        (root / "10").mkdir()
    elif case == "truncated_strict":
        _truncated(root)
        extra = ["data.strict=true"]
    elif case == "one_class":
        (root / "4").mkdir()
        Image.fromarray(_sample(1)[0][0]).save(root / "4" / "a.png")
        Image.fromarray(_sample(1)[0][0]).save(root / "4" / "b.png")
    store = tmp_path / "store"
    result = run_cli(
        "src.train", *FAST, "data=folder", f"data.path={root}", *extra,
        f"tracking.uri=sqlite:///{store}/mlflow.db", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(root) in errors[0]
    assert "Traceback" not in result.stderr
    assert not any(store.iterdir())  # no database, no run, nothing registered


@pytest.mark.slow
def test_train_register_and_evaluate_on_a_folder_end_to_end(tmp_path, store):
    write_digits(tmp_path / "mine", 600)
    run_dir = tmp_path / "run"
    trained = run_cli(
        "src.train", *FAST, "training.epochs=3", "training.batch_size=32", "data=folder",
        f"data.path={tmp_path / 'mine'}", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    hand = write_folder(tmp_path / "hand", 4, seed=5, suffix=".jpg")
    evaluated = run_cli(
        "src.evaluate", "model=models:/handwritten-digits@champion", "data=folder", f"data.path={hand}",
        "training.precision=float32", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]

    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time ASC"], output_format="list")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    training, evaluation = runs
    assert training.data.tags["data.name"] == "folder"
    assert training.data.tags["data.source"] == str(tmp_path / "mine")
    assert training.data.tags["registered_model"] == "handwritten-digits/1"
    assert training.data.metrics["test_accuracy"] > 0.7
    # every picture of the hand scored, logged as a dataset with its digest and source
    tags, metrics = evaluation.data.tags, evaluation.data.metrics
    assert tags["data.test_size"] == "40" and tags["data.source"] == str(hand) and tags["data.digest"]
    inputs = {i.dataset.name: i.dataset for i in evaluation.inputs.dataset_inputs}
    assert inputs["folder-test"].source and inputs["folder-test"].digest
    assert 0 <= metrics["test_accuracy"] <= 1
    assert {f"test_{k}_{c}" for k in ("precision", "recall", "f1") for c in range(10)} <= set(metrics)
    printed = [line for line in evaluated.stdout.splitlines() if line.startswith("test accuracy ")]
    assert float(printed[-1].split()[2].rstrip(",")) == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    artifacts = {
        a.path for a in mlflow.MlflowClient().list_artifacts(evaluation.info.run_id, "confusion_matrix")
    }
    assert {"confusion_matrix/test.png", "confusion_matrix/test.csv"} <= artifacts
    if metrics["test_accuracy"] < 1:
        misread = mlflow.MlflowClient().list_artifacts(evaluation.info.run_id, "misclassified")
        assert [a.path for a in misread] == ["misclassified/test.png"]
    assert len(mlflow.MlflowClient().search_model_versions("name='handwritten-digits'")) == 1
