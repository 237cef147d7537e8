"""Optuna searches (hydra/sweeper=optuna_search): the study's storage, a trial reporting to the pruner,
the study on the sweep's parent run.

optuna 2.10 (the version hydra-optuna-sweeper 1.3 pins) predates SQLAlchemy 2: its schema-version
bookkeeping leaves a connection's transaction open, so a new SQLite study fails with "database is locked"
(and elsewhere the stamp is never committed). `open_storage` gives Optuna's RDBStorage with that bookkeeping
done in committed transactions; everything else is Optuna's own.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from typing import TYPE_CHECKING

from omegaconf import DictConfig

if TYPE_CHECKING:
    from typing import Any

    import keras
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
_SWAP = threading.Lock()


def open_storage(url: str | None) -> Any:
    """Optuna's storage for a URL (None: in memory)."""
    if not url:
        return None
    import alembic.migration
    from optuna.storages._rdb import storage as rdb

    class CommittingVersionManager(rdb._VersionManager):
        def _init_alembic(self) -> None:
            with self.engine.begin() as connection:
                if alembic.migration.MigrationContext.configure(connection).get_current_revision():
                    return
            supported = self._is_alembic_supported()
            self._set_alembic_revision(self.get_head_version() if supported else self._get_base_version())

        def _set_alembic_revision(self, revision: str) -> None:
            with self.engine.begin() as connection:
                context = alembic.migration.MigrationContext.configure(connection)
                context.stamp(self._create_alembic_script(), revision)

        def get_current_version(self) -> str:
            with self.engine.connect() as connection:
                version = alembic.migration.MigrationContext.configure(connection).get_current_revision()
            assert version is not None
            return version

    with _SWAP:  # RDBStorage builds its version manager in __init__, by this module-level name
        original = rdb._VersionManager
        setattr(rdb, "_VersionManager", CommittingVersionManager)  # noqa: B010 (a class, not an attribute)
        try:
            return rdb.RDBStorage(str(url))
        finally:
            setattr(rdb, "_VersionManager", original)  # noqa: B010


def study_tags(sweeper: DictConfig) -> dict[str, str]:
    """An Optuna search's study on the parent run: its name and storage (any password hidden)."""
    if "study_name" not in sweeper:
        return {}
    storage = sweeper.get("storage")
    shown = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", str(storage)) if storage else "memory"
    return {"optuna.study_name": str(sweeper.study_name), "optuna.storage": shown}


def log_study(parent_run_id: str, sweeper: DictConfig) -> None:
    """Optuna's optimisation history and parameter importances (the whole study, over every search that
    continued it) as PNGs on the parent run, under optuna/."""
    if not sweeper.get("storage") or not sweeper.get("study_name"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    from src.tracking import records

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=sweeper.study_name, storage=open_storage(sweeper.storage))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if complete:
            axes = optuna_plots.plot_optimization_history(study)
            axes.set(title=f"{study.study_name}: {len(study.trials)} trials", ylabel="validation accuracy")
            figures["optimization_history"] = axes.figure
        if len(complete) >= 2:
            # mean decrease in impurity: optuna 2.10's default (fANOVA) fails on today's scikit-learn, and
            # its importance plot on today's matplotlib, so the bars are drawn here
            evaluator = optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
            try:
                importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
                figures["param_importances"] = importance_figure(importances, study.study_name, len(complete))
            except (ValueError, RuntimeError) as e:
                log.warning("optuna: no parameter importances: %s", e)
    for name, figure in figures.items():
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        records.log_figure_to(parent_run_id, figure, f"optuna/{name}.png")
        plt.close(figure)


def importance_figure(importances: dict[str, float], study_name: str, trials: int) -> Figure:
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    fig, ax = plt.subplots()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    for y, name in enumerate(names):
        ax.annotate(f"{importances[name]:.2f}", (importances[name], y), va="center", xytext=(3, 0),
                    textcoords="offset points")  # fmt: skip
    ax.set(
        xlabel="importance (mean decrease in impurity)",
        title=f"{study_name}: importances ({trials} completed trials)",
    )
    return fig


def pruning_callback(
    storage: str, study_name: str, trial: int, pruner: DictConfig, monitor: str
) -> keras.callbacks.Callback:
    """A Keras callback reporting `monitor` after every epoch to this job's Optuna trial (through the
    study's storage) and stopping training when the pruner says so; `.pruned` then says why."""
    import keras
    import optuna
    from hydra.utils import instantiate

    study = optuna.load_study(
        study_name=study_name, storage=open_storage(storage), pruner=instantiate(pruner)
    )
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial)
    reporter = optuna.trial.Trial(study, trial_id)

    class ReportToPruner(keras.callbacks.Callback):
        pruned: str | None = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            value = (logs or {}).get(monitor)
            if value is None:
                return
            reporter.report(float(value), epoch)
            if reporter.should_prune():
                self.pruned = f"{monitor} {float(value):.4f} at epoch {epoch + 1}, below the pruner's bar"
                self.model.stop_training = True

    return ReportToPruner()
