"""What every command does at its edge, in one place.

A mistake the user can fix (a `UserError`, or a tracking server's refusal of a login or permission) is
one line on stderr and exit code 2; Ctrl-C or SIGTERM, where the command says what it means, is exit
code 130 with that line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from src import UserError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("src")


@functools.cache
def exit_quickly() -> None:
    """At the command's exit, the interpreter's last garbage collections walk every object TensorFlow,
    Keras and MLflow made (about 1.5-2 s measured here): freeze them first, so the collections skip them.
    Everything else at exit still happens (atexit handlers, MLflow's flushes, files closed); the memory
    goes back to the system with the process."""
    import atexit
    import gc

    atexit.register(gc.freeze)


@contextlib.contextmanager
def user_errors(interrupted: str | None = None) -> Iterator[None]:
    """Inside: user errors end the command with `error: ...` and exit code 2; with `interrupted`, an
    interrupt prints it and exits 130 (without, it propagates)."""
    from src.tracking import access

    exit_quickly()
    try:
        with access.refusals():
            yield
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"interrupted: {interrupted}", file=sys.stderr)
        sys.exit(130)


def command(interrupted: str | None = None) -> Callable[[F], F]:
    """A command's main function (under `@hydra.main`, or called with argv) inside `user_errors`."""

    def decorate(main: F) -> F:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> Any:
            with user_errors(interrupted):
                return main(*args, **kwargs)

        return cast(F, run)

    return decorate


class _ReaderMayLeave:
    """A standard stream whose reader may go away (`python -m src.train | head`, a closed terminal):
    from the first write that finds the pipe closed, what the command prints goes to /dev/null and the
    command carries on. Everything else is the stream's own."""

    def __init__(self, stream: Any, name: str) -> None:
        self._stream, self._name = stream, name
        self.diverted = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._divert()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._divert()

    def _divert(self) -> None:
        if self.diverted:
            return
        self.diverted = True
        try:
            descriptor = self._stream.fileno()
        except (OSError, ValueError):  # a stream without a file descriptor: replaced instead
            self._stream = open(os.devnull, "w")  # noqa: SIM115 (open for the rest of the command)
        else:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, descriptor)  # the stream's own buffer now drains into /dev/null
            os.close(devnull)
        if self._name == "stdout":
            with contextlib.suppress(OSError):  # stderr may be the same closed pipe
                print(
                    "note: stdout was closed by its reader; the command goes on without printing there "
                    "(a training's log file has it all)",
                    file=sys.stderr,
                    flush=True,
                )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def outlive_closed_output() -> None:
    """A long command (a training) keeps going when whoever reads its output goes away: a closed pipe
    on stdout or stderr is written to /dev/null instead of ending the run with BrokenPipeError. Call it
    before Hydra sets up its logging, so that its handlers write through the same guard."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _ReaderMayLeave):
            setattr(sys, name, _ReaderMayLeave(stream, name))


def help_text(doc: str, config_name: str, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """What a command does (its docstring) and each key of its composed config, with its value and the
    YAML comment that says what it means (`overrides` apply: `backbone=simple_cnn --help` shows its keys)."""
    import json
    import textwrap

    from hydra.core.plugins import Plugins

    from src import config, key_help

    Plugins.instance()  # the sweepers and launchers (hydra/sweeper=optuna_search), as hydra.main finds them
    cfg = config.compose(overrides, config_name)
    described = key_help.key_descriptions(config_name, overrides)

    def meaning(text: str) -> list[str]:
        return textwrap.wrap(text, 104, initial_indent="      ", subsequent_indent="      ")

    lines = [doc.strip(), "", "Keys (key=value on the command line; shown with the value they have now):"]
    told: set[str] = set()
    for key, value in key_help.leaf_keys(cfg).items():
        found = key_help.description_of(key, described)
        if found and found[0] != key and found[0] not in told:
            told.add(found[0])
            lines += [f"  {found[0]}:", *meaning(found[1])]
        shown = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"  {key}={shown if len(shown) <= 96 else shown[:92] + ' ...'}")
        if found and found[0] == key:
            lines += meaning(found[1])
    groups = sorted(
        str(d.relative_to(config.CONF_DIR))
        for d in config.CONF_DIR.rglob("*")
        if d.is_dir() and d.relative_to(config.CONF_DIR).parts[0] not in ("commands", "hydra")
    )
    if config_name in ("train", "evaluate"):
        lines += ["", "Groups (group=choice; +experiment=NAME adds a preset):"]
        for group in groups:
            choices = sorted(p.stem for p in (config.CONF_DIR / group).glob("*.yaml"))
            lines.append(f"  {group}: {', '.join(choices)}")
    lines += [
        "",
        "Hydra's options: --cfg job prints the composed config and exits; --hydra-help lists the others.",
    ]
    return "\n".join(lines)


def help_if_asked(doc: str | None, config_name: str, argv: list[str] | None = None) -> None:
    """`--help` or `-h`: the command's help_text, then exit 0 (Hydra's own --help prints the config
    without a word on what its keys mean)."""
    argv = sys.argv[1:] if argv is None else argv
    if not {"--help", "-h"} & set(argv):
        return
    try:
        print(help_text(doc or "", config_name, [a for a in argv if a not in ("--help", "-h")]))
    except UserError as e:
        fail(str(e))
    sys.exit(0)


def fail(message: str, code: int = 2) -> None:
    """End the command with `error: message` on stderr."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def report(error: UserError) -> None:
    """A user error that does not end the command (one picture of several), said the same way."""
    print(f"error: {error}", file=sys.stderr)


def announce(fallbacks: list[str]) -> None:
    """Fallbacks (the offline sample for MNIST, random weights for ImageNet's) change what a run means:
    say so where nobody can miss it."""
    for fallback in fallbacks:
        log.warning("FALLBACK %s", fallback)
