"""`hydra/sweeper=optuna_search`: hydra-optuna-sweeper's search, made to survive what a long search meets.

hydra-optuna-sweeper 1.3 runs the study (sampler, search space, launcher) well; this sweeper keeps all of
that (it reuses the plugin's search-space parsing and trial configuration) and replaces its ask-launch-tell
loop, which:
- aborts the whole search when one trial fails (optuna 2.10 refuses the NaN a failed job returns, and
  the handler then calls `tell` a second time, which raises);
- checks `max_failure_rate` per batch of `n_jobs` trials, so with one trial per batch a single failure
  is a rate of 100%;
- cannot record a pruned trial.
Here a job that failed or was pruned returns `src.sweeps.sweep.TrialEnd`, told to Optuna as FAIL or PRUNED;
`max_failure_rate` is a share of the search's `n_trials`; each job learns its trial number
(`hydra.sweeper.trial`), so it can report to the pruner through the study's storage; trials an
interrupted search left RUNNING are marked FAIL and queued again, so a resumed search retries them first.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional  # noqa: UP035 (Hydra's structured configs need typing's)

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import MISSING, DictConfig, OmegaConf

if TYPE_CHECKING:
    import optuna
    from hydra.core.utils import JobReturn

log = logging.getLogger(__name__)


@dataclass
class OptunaSearchConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.handwritten_digits.optuna_search.OptunaSearch"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])  # noqa: UP006
    # An Optuna pruner, chosen like the sampler: hydra/sweeper/pruner=none|median|threshold, or any
    # _target_ of optuna.pruners.
    pruner: Any = MISSING
    # Set by the sweeper in each job's config: the number of the Optuna trial the job runs.
    trial: Optional[int] = None  # noqa: UP045


store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="optuna_search", node=OptunaSearchConf, provider="handwritten-digits")
PRUNERS = {
    "none": {"_target_": "optuna.pruners.NopPruner"},
    # a trial below the median of the completed trials at the same epoch stops, from its second epoch on
    "median": {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 3, "n_warmup_steps": 1},
    # a trial still below `lower` after its first epoch stops (e.g. a learning rate that diverges)
    "threshold": {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5, "n_warmup_steps": 1},
}
for name, node in PRUNERS.items():
    store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="handwritten-digits")


class OptunaSearch(Sweeper):
    def __init__(self, pruner: Any = None, trial: int | None = None, **kwargs: Any) -> None:
        from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

        class Impl(OptunaSweeperImpl):
            sweep = _sweep
            pruner: Any = None  # Hydra instantiates it; _sweep hands it to the study

        self.sweeper = Impl(**kwargs)
        self.sweeper.pruner = pruner

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)


def _sweep(self: Any, arguments: list[str]) -> None:
    """`self`: Hydra's OptunaSweeperImpl, set up (its config, launcher and this class's pruner are there).

    The search: ask `n_jobs` trials, launch them, tell each one's end; stop when failures exceed
    `max_failure_rate` of `n_trials` (the launching process then ends with a one-line error)."""
    import functools
    import math

    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    self._process_searchspace_config()
    distributions, fixed = create_params_from_overrides([*self._parse_sweeper_params_config(), *arguments])
    if self.search_space_distributions:
        distributions = {**self.search_space_distributions, **distributions}
    for name in fixed:
        distributions.pop(name, None)
    if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
        grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
        self.sampler = self.sampler(grid)
        self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
    study = _open_study(self, distributions)
    _run_trials(self, study, distributions, fixed)
    _save_best(self, study)


def _open_study(self: Any, distributions: dict) -> "optuna.Study":
    """The study, new or continued (a continued one reseeded, its search space unchanged, its interrupted
    trials queued again)."""
    import optuna
    from hydra.utils import instantiate

    from src.sweeps.search import open_storage
    from src.sweeps.sweep import abort

    if self.storage and str(self.storage).startswith("sqlite:///"):
        Path(str(self.storage)[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=self.study_name,
        storage=open_storage(self.storage),
        sampler=self.sampler,
        pruner=self.pruner or optuna.pruners.NopPruner(),  # Hydra has instantiated it
        directions=self._get_directions(),
        load_if_exists=True,
    )
    earlier = len(study.trials)
    sampler_cfg: Any = self.config.hydra.sweeper.get("sampler") or {}
    if earlier and sampler_cfg.get("seed") is not None:
        # a continued study: seeded as before, the sampler would draw the first search's points again
        study.sampler = self.sampler = instantiate(sampler_cfg, seed=int(sampler_cfg.seed) + earlier)
    changed = changed_space(study, distributions)
    if changed:
        abort(
            self.config.hydra.sweep.dir,
            f"study {study.study_name} in {self.storage} searched {changed} over other values; "
            "continue it with the same search space, or start a new study (hydra.sweeper.study_name=...)",
        )
    requeue_interrupted(study)
    log.info(
        "Optuna study %s in %s: %d earlier trials, %d more to run",
        study.study_name,
        self.storage or "memory",
        earlier,
        self.n_trials,
    )
    return study


def _run_trials(self: Any, study: "optuna.Study", distributions: dict, fixed: dict) -> None:
    """Launch `n_jobs` trials at a time and tell each one's end, until `n_trials` ran or too many failed."""
    import optuna

    allowed = self.max_failure_rate * self.n_trials
    failed = 0
    left = self.n_trials
    while left > 0:
        trials = [study.ask() for _ in range(min(left, self.n_jobs))]
        overrides = [
            (*job, f"hydra.sweeper.trial={trial.number}")
            for job, trial in zip(self._configure_trials(trials, distributions, fixed), trials, strict=True)
        ]
        returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        for trial, ret in zip(trials, returns, strict=True):
            state, values, why = outcome(ret)
            study.tell(trial, values, state)
            if state == optuna.trial.TrialState.FAIL:
                failed += 1
                log.warning("trial %d failed: %s", trial.number, why)
            elif state == optuna.trial.TrialState.PRUNED:
                log.info("trial %d pruned: %s", trial.number, why)
        left -= len(returns)
        if failed > allowed:
            log.error(
                "%d failed trials, more than max_failure_rate=%s of %d: the search stops",
                failed,
                self.max_failure_rate,
                self.n_trials,
            )
            return


def _save_best(self: Any, study: "optuna.Study") -> None:
    """The best trial of a single-objective study, logged and saved as optimization_results.yaml."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete or len(self._get_directions()) != 1:
        return
    best = study.best_trial
    log.info("Best parameters: %s", best.params)
    log.info("Best value: %s (trial %d)", best.value, best.number)
    OmegaConf.save(
        OmegaConf.create(
            {
                "name": "optuna",
                "study_name": study.study_name,
                "best_params": best.params,
                "best_value": best.value,
                "best_trial": best.number,
            }  # fmt: skip
        ),
        f"{self.config.hydra.sweep.dir}/optimization_results.yaml",
    )


def outcome(ret: "JobReturn") -> tuple[Any, list[float] | None, str]:
    """A job's return as Optuna's trial state, the values to tell and why it did not complete."""
    import math

    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    from src.sweeps.sweep import TrialEnd

    if ret.status == JobStatus.FAILED:  # the job raised (our jobs catch their errors; a launcher's did not)
        error = ret._return_value
        return TrialState.FAIL, None, f"{type(error).__name__}: {error}"
    value = ret.return_value
    if isinstance(value, TrialEnd):
        return TrialState[value.state], None, value.message
    try:
        values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
    except (TypeError, ValueError):
        return TrialState.FAIL, None, f"the job returned {value!r}, not a number"
    if not all(math.isfinite(v) for v in values):
        return TrialState.FAIL, None, f"the job returned {values}"
    return TrialState.COMPLETE, values, ""


def changed_space(study: "optuna.Study", distributions: dict) -> str | None:
    """The first parameter whose values the study's earlier trials drew differently (None: all agree);
    Optuna refuses to mix them in one study."""
    from optuna.distributions import check_distribution_compatibility

    for trial in study.get_trials(deepcopy=False):
        for name, earlier in trial.distributions.items():
            if name in distributions:
                try:
                    check_distribution_compatibility(earlier, distributions[name])
                except ValueError:
                    return name
    return None


def requeue_interrupted(study: "optuna.Study") -> list[int]:
    """Trials left RUNNING by an interrupted search become FAIL, and their parameters are queued to run
    first. (One search per study at a time: a RUNNING trial here is one nobody runs.)"""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        log.warning("trial %d, left running by an interrupted search: failed, queued again", trial.number)
        study.tell(trial.number, None, TrialState.FAIL)
        study.enqueue_trial(trial.params)
    return [t.number for t in stale]
