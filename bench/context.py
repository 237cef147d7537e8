"""One bench in progress: its options, its store and scratch folder, the rows measured so far, and each
step's start and the machine's speed then."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.runs import full_mnist, train_command


@dataclass
class Bench:
    quick: bool
    data: str | None  # --data as given
    out: Path
    tmp: Path
    r: dict  # the rows, in the order they are measured (the JSON's order)
    began: float = field(default_factory=time.perf_counter)
    steps: dict[str, float] = field(default_factory=dict)  # each step's start, seconds into the bench
    # the machine's speed as each step starts (a one-second matrix product): a shared or throttled CPU
    # can run a third slower later in the bench, and only rows measured at one speed compare
    speeds: dict[str, float] = field(default_factory=dict)
    reader: str = ""  # the model the reading steps read with (runs:/<id>/model)
    fresh: int = 0  # the next run's number: its own folder and feature cache

    @property
    def store(self) -> str:
        return f"sqlite:///{self.tmp / 'mlflow.db'}"

    @property
    def data_path(self) -> list[str]:
        """--data as an override of the data config."""
        return [f"data.path={Path(self.data).absolute()}"] if self.data else []

    @property
    def mnist(self) -> str | None:
        """Full MNIST's file (None: no --data and no Keras cache; the rows that need it are not measured)."""
        return full_mnist(self.data)

    @property
    def full_data(self) -> list[str] | None:
        return ["data=mnist", f"data.path={self.mnist}"] if self.mnist else None

    def step(self, name: str) -> None:
        """A step begins: its start and the machine's speed, and the rows so far in partial.json."""
        from bench.speed import matmul_peak

        self.speeds[name] = round(matmul_peak(dtype="float32", seconds=1.0), 1)
        self.steps[name] = time.perf_counter() - self.began
        speed = f"matrix product {self.speeds[name]:.0f} GFLOP/s"
        print(f"[bench {self.steps[name]:5.0f} s] {name} ({speed}) ...", flush=True)
        # what is measured so far, in case a later step fails after an hour of the full bench
        partial = self.out / "partial.json"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({**self.r, "bench_steps_at_s": self.steps}, indent=2, default=str))

    def run(self, *overrides: str) -> dict:
        """`python -m src.train overrides` in a folder and with a feature cache of its own."""
        n, self.fresh = self.fresh, self.fresh + 1
        cache = f"training.feature_cache_dir={self.tmp / f'cache{n}'}"
        return train_command(self.store, self.tmp / f"run{n}", *overrides, cache)

    def finish(self) -> None:
        """How long each step took: where the bench's own time goes."""
        ends = [*list(self.steps.values())[1:], time.perf_counter() - self.began]
        self.r["bench_s"] = round(ends[-1], 1)
        self.r["bench_steps_s"] = {
            name: round(end - start, 1) for (name, start), end in zip(self.steps.items(), ends, strict=True)
        }
        self.r["bench_steps_gflops"] = self.speeds
