"""Re-running a tracked run from its record alone: its config rebuilt from what it logged, checked key by
key, its code version and data checked; the arguments for the training entry point (src/rerun.py runs
it)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from src import UserError
from src.config import compose, leaves
from src.tracking import access

if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("src.rerun")

RERUN_OF = "rerun_of"
# keys whose value says where or how a run was started, not what it computed: never taken from the record
_NOT_REBUILT = ("tracking.uri", "tracking.tags.rerun_of", "training.resume")
_OPTIONS = {"run_id", "model", "same_code", "allow_other_data"}
_USAGE = (
    "usage: python -m src.rerun run_id=<id> | model=models:/<name>@<alias> [same_code=true] "
    "[allow_other_data=true] [overrides]"
)


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """This command's own options (run_id, model, same_code, allow_other_data) and the overrides."""
    options: dict = {"same_code": False, "allow_other_data": False}
    overrides: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if arg in ("-m", "--multirun"):
            raise UserError("a re-run is one run: -m/--multirun is not supported (re-run each job)")
        if not sep or key not in _OPTIONS:
            overrides.append(arg)
        elif key in ("same_code", "allow_other_data"):
            if value.lower() not in ("true", "false"):
                raise UserError(f"{key}: {value!r} is not true or false")
            options[key] = value.lower() == "true"
        elif not value:
            raise UserError(f"{key}: empty; {_USAGE}")
        else:
            options[key] = value
    if ("run_id" in options) == ("model" in options):
        raise UserError(f"give run_id=<id> or model=<models:/ URI>, one of them; {_USAGE}")
    if "model" in options and not options["model"].startswith("models:/"):
        raise UserError(
            f"model: {options['model']!r} is not a models:/<name>@<alias> or models:/<name>/<version> URI"
        )
    return options, overrides


def run_of_model(uri: str) -> str:
    """The run that produced a registered model version: models:/name@alias, /version or /latest."""
    import mlflow

    client = mlflow.MlflowClient()
    ref = uri.removeprefix("models:/")
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = ref.rpartition("/")
            if number == "latest":
                versions = client.search_model_versions(f"name='{name}'")
                if not versions:
                    raise UserError(f"model: no versions of {name!r}")
                version = max(versions, key=lambda v: int(v.version))
            else:
                version = client.get_model_version(name, number)
    except mlflow.exceptions.MlflowException as e:
        if access.refusal(e):  # no login or no permission: said as such by access.refusals()
            raise
        raise UserError(f"model: cannot find {uri}: {str(e).splitlines()[0]}") from None
    if not version.run_id:
        raise UserError(f"model: {uri} was not logged by a run")
    return version.run_id


def recorded_overrides(run_id: str) -> list[str] | None:
    """Hydra's record of the run's command-line overrides (None: the run was not started by Hydra)."""
    import mlflow
    import yaml

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/config/hydra/overrides.yaml")
    except (mlflow.exceptions.MlflowException, OSError) as e:
        if access.refusal(e):
            raise
        return None
    return [o for o in (yaml.safe_load(text) or []) if _key(o) not in _NOT_REBUILT]


def logged_config(run_id: str) -> dict:
    """The composed config the run logged (read as OmegaConf reads YAML: 1e-05 is a float)."""
    import mlflow

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/config/config.yaml")
    except (mlflow.exceptions.MlflowException, OSError) as e:
        if access.refusal(e):
            raise
        raise UserError(f"run {run_id} logged no config (config/config.yaml): it cannot be re-run") from None
    logged = OmegaConf.to_container(OmegaConf.create(text))
    if not isinstance(logged, dict):
        raise UserError(
            f"run {run_id} logged a config/config.yaml that is not a mapping: it cannot be re-run"
        )
    return with_added_keys(current_targets(logged))


# Keys conf/ gained after runs had been logged without them, with the value that computes as those runs
# did (not the key's default, which lives in conf/ alone): a run logged before is rebuilt with it.
ADDED_KEYS = {
    "tracking.champion.min_delta": 0.0,  # before it, any gain moved the champion
    "backbone.freeze_batchnorm": True,  # before it, frozen BatchNormalization always ran in inference mode
    "backbone.min_input_size": 32,  # before it, every backbone took 32x32 pictures at least
    "training.digit_score.when": "training",  # before it, the digit score was fitted at training
    "training.non_digits.pairs": 0.0,  # before it, no pairs of digits trained as non-digits
    "training.non_digits.fonts": 0.0,  # before it, no digits of the training fonts
}


def with_added_keys(logged: dict) -> dict:
    """The logged config with each key of ADDED_KEYS it lacks (where its parent was logged) set to the
    value that computes as the run did."""
    for key, value in ADDED_KEYS.items():
        *parents, leaf = key.split(".")
        node: object = logged
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(leaf, value)
    return logged


# `_target_`s that moved when src/ became packages: a run logged before names them as they were
MOVED_TARGETS = {
    "src.model.simple_cnn": "src.models.networks.simple_cnn",
    "src.schedules.one_cycle": "src.training.schedules.one_cycle",
}


def current_targets(logged: Any) -> Any:
    """The logged config with the `_target_`s that moved named as they are now (the same objects)."""
    if isinstance(logged, dict):
        return {
            k: MOVED_TARGETS.get(v, v) if k == "_target_" else current_targets(v) for k, v in logged.items()
        }
    return [current_targets(v) for v in logged] if isinstance(logged, list) else logged


def differences(composed: DictConfig, logged: dict) -> dict[str, tuple]:
    """Leaves where the config composed now differs from the logged one: key -> (now, logged, whether
    the logged config lacks the key)."""
    now = leaves(OmegaConf.to_container(composed, resolve=True))
    then = leaves(logged)
    missing = object()
    found = {}
    keys = sorted(set(now) | set(then))
    for key in keys:
        if key in _NOT_REBUILT or key.startswith("tracking.tags."):
            continue
        if any(other.startswith(f"{key}.") for other in keys):
            continue  # emptied on one side: the keys below it say what differs
        a, b = now.get(key, missing), then.get(key, missing)
        if a != b or type(a) is not type(b):
            found[key] = (None if a is missing else a, None if b is missing else b, b is missing)
    return found


def override_value(value: object) -> str:
    """A leaf value in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def overrides_undoing(found: dict[str, tuple], logged: dict) -> list[str]:
    """Overrides that set the differing keys back to the logged values (and remove what it lacks)."""
    fixes: list[str] = []
    for key, (_, value, absent) in found.items():
        fix = f"~{_absent_root(key, logged)}" if absent else f"++{key}={override_value(value)}"
        if fix not in fixes:
            fixes.append(fix)
    return fixes


def _absent_root(key: str, logged: dict) -> str:
    """The shortest prefix of a dotted key that the logged config lacks (remove the whole node)."""
    node, parts = logged, key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return ".".join(parts[: i + 1])
    return key


def rebuild(run_id: str) -> tuple[list[str], list[str]]:
    """The task overrides that compose the run's config again, and what had to be taken from the logged
    config (keys conf/ now composes differently, or every key when Hydra's record is missing)."""
    recorded = recorded_overrides(run_id)
    logged = logged_config(run_id)
    base = recorded if recorded is not None else []
    fixes = overrides_undoing(differences(compose(base), logged), logged)
    rebuilt = base + fixes
    left = differences(compose(rebuilt), logged) if fixes else {}
    if left:
        raise UserError(
            f"run {run_id}: conf/ has changed in a way overrides cannot undo ({', '.join(left)}); "
            "check out the run's commit and re-run from there"
        )
    notes = []
    if recorded is None:
        notes.append(
            "the run has no Hydra record (config/hydra/overrides.yaml): rebuilt from its config.yaml"
        )
    elif fixes:
        keys = ", ".join(k.lstrip("+~").split("=")[0] for k in fixes)
        notes.append(f"conf/ now composes {keys} differently from the run: the run's values are kept")
    return rebuilt, notes


def check_code(tags: Mapping[str, str], same_code: bool) -> None:
    """The run's git commit against this checkout's; a difference is a warning, or (same_code) an error."""
    from src.tracking import git_tags

    then, now = tags.get("mlflow.source.git.commit"), git_tags()
    commit = now.get("mlflow.source.git.commit", "")
    problems = []
    if not then:
        problems.append("the run recorded no git commit")
    elif not now:
        problems.append(f"the run was made at commit {then[:12]}, and this code is not a git checkout")
    elif commit != then:
        problems.append(f"the run was made at commit {then[:12]}, this checkout is at {commit[:12]}")
    if tags.get("git.dirty") == "true":
        problems.append("the run's tree had uncommitted changes")
    if now.get("git.dirty") == "true":
        problems.append("this tree has uncommitted changes")
    if not problems:
        return
    message = "code differs: " + "; ".join(problems)
    if same_code:
        raise UserError(f"{message} (same_code=true)")
    log.warning("%s; the numbers may differ (same_code=true refuses this)", message)


def split_hydra_args(args: list[str]) -> tuple[list[str], list[str]]:
    """The task overrides, and Hydra's own flags and overrides (--cfg job, hydra.run.dir=...)."""
    task, hydra_args = [], []
    takes_value = False
    for arg in args:
        if takes_value and "=" not in arg:
            hydra_args.append(arg)  # --cfg job, --package _global_
        elif arg.startswith("-") or _key(arg).startswith(("hydra.", "hydra/")):
            hydra_args.append(arg)
        else:
            task.append(arg)
        takes_value = arg in ("--cfg", "-c", "--package", "-p", "--info", "-i")
    return task, hydra_args


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


# what checks the data a re-run would use against the run's (its tags: data.digest, ...): the command's
# (src/rerun.py), which may load data; given allow_other_data, a difference is only a warning
CheckData = Callable[[DictConfig, Mapping[str, str], bool], object]


def prepare(argv: list[str], check_data: CheckData) -> list[str]:
    """Everything but the training: the arguments for the training entry point."""
    options, extra = parse(argv)
    task, hydra_args = split_hydra_args(extra)

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # two small files
    import mlflow

    from src import tracking

    store = tracking.resolve_uri(compose([o for o in task if _key(o).startswith("tracking.")]).tracking.uri)
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise UserError(f"no MLflow store at {store} (set MLFLOW_TRACKING_URI or tracking.uri)")
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    access.check_login(store)
    with access.refusals(store):
        return _arguments(options, task, hydra_args, store, check_data)


def _precision_used(cfg: DictConfig, tags: Mapping[str, str], given: set[str]) -> list[str]:
    """training.precision=auto chooses by a measurement of the machine it runs on: a re-run elsewhere
    could compute in another precision and give other numbers. It computes in what the run used (its
    tag), unless the precision is given here."""
    used = tags.get("precision")
    if "training.precision" in given or cfg.training.get("precision") != "auto" or not used:
        return []
    log.info("the run computed in %s (training.precision=auto on its machine): the re-run does too", used)
    return [f"training.precision={used}"]


def _arguments(
    options: dict, task: list[str], hydra_args: list[str], store: str, check_data: CheckData
) -> list[str]:
    import mlflow

    from src import config

    run_id = options.get("run_id") or run_of_model(options["model"])
    try:
        run = mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException as e:
        if access.refusal(e):
            raise
        raise UserError(f"run_id: no run {run_id!r} in {store}") from None
    tags = run.data.tags
    if tags.get("sweep") == "true":
        raise UserError(f"run {run_id} is a sweep's parent run: re-run one of its jobs")
    rebuilt, notes = rebuild(run_id)
    for note in notes:
        log.warning("%s", note)
    check_code(tags, options["same_code"])
    # an override given here replaces the run's own for the same key (one that adds a key stays)
    given = {_key(o) for o in task}
    rebuilt = [o for o in rebuilt if o.startswith(("+", "~")) or _key(o) not in given]
    overrides = [*rebuilt, *task, f"++tracking.tags.{RERUN_OF}={run_id}"]
    cfg = compose(overrides)
    experiment = mlflow.get_experiment(run.info.experiment_id).name
    if cfg.tracking.experiment != experiment:  # the same experiment, whatever the config says
        overrides.append(f"tracking.experiment={override_value(experiment)}")
    overrides += _precision_used(cfg, tags, given)
    config.validate_training(cfg)
    check_data(cfg, tags, options["allow_other_data"])
    log.info("run %s (%s) again: %s", run_id, run.info.run_name, " ".join(overrides))
    return [*overrides, "hydra.mode=RUN", *hydra_args]
