"""Schemas of a composed config: a rule per key, saying what the key may hold. A failed rule is one line
naming the key, the bad value and what would be valid; the values themselves, defaults included, live in
conf/ alone. src/config.py holds the training config's schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from src import UserError


def get(cfg: Any, key: str) -> Any:
    """The value at a dotted key."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _always(cfg: Any) -> bool:
    return True


@dataclass(frozen=True)
class Whole:
    """A whole number of at least `minimum` (a number, or the dotted key that holds it)."""

    key: str
    minimum: int | str
    allow_none: bool = False
    when: Callable[[Any], bool] = _always

    def __call__(self, cfg: Any) -> None:
        value = get(cfg, self.key)
        minimum = get(cfg, self.minimum) if isinstance(self.minimum, str) else self.minimum
        if value is None and self.allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UserError(f"{self.key}: {value!r} is not a whole number >= {minimum}")


@dataclass(frozen=True)
class Number:
    """A number above `low` (at least `low` with low_open=False) and below `high` (a number, or the dotted
    key that holds it; None: no bound)."""

    key: str
    low: float
    high: float | str | None = None
    low_open: bool = True
    when: Callable[[Any], bool] = _always

    def __call__(self, cfg: Any) -> None:
        value = get(cfg, self.key)
        high = float(get(cfg, self.high)) if isinstance(self.high, str) else self.high
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and (value > self.low if self.low_open else value >= self.low)
        if not (ok and (high is None or value < high)):
            bounds = f"{'>' if self.low_open else '>='} {self.low}" + (
                f" and < {high}" if high is not None else ""
            )
            raise UserError(f"{self.key}: {value!r} is not a number {bounds}")


@dataclass(frozen=True)
class Choice:
    """One of a few values (true or false by default)."""

    key: str
    choices: tuple[Any, ...] = (True, False)
    when: Callable[[Any], bool] = _always

    def __call__(self, cfg: Any) -> None:
        value = get(cfg, self.key)
        if value not in self.choices:
            raise UserError(f"{self.key}: {value!r} is not one of {', '.join(map(str, self.choices))}")


@dataclass(frozen=True)
class Checked:
    """A rule that no range says: `check` raises its own one-line UserError (what it returns is unused)."""

    check: Callable[[Any], object]
    when: Callable[[Any], bool] = _always


Rule = Whole | Number | Choice | Checked


def check(cfg: Any, schema: tuple[Rule, ...]) -> None:
    """Every rule of `schema` that applies to `cfg`; the first that fails raises its UserError."""
    for rule in schema:
        if not rule.when(cfg):
            continue
        if isinstance(rule, Checked):
            rule.check(cfg)
        else:
            rule(cfg)
