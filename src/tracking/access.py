"""Who may use a tracking server: its refusals (no login, a wrong one, no permission) as one-line errors.

A server started with `python -m src.server --auth` (MLflow's basic-auth app) answers a missing or wrong
login with 401 and a user without the permission with 403; MLflow raises them from deep inside a call as
long messages, or as a traceback. A command wraps its store access in `refusals()`, which turns them
into a UserError (`error: ...`, exit 2) naming the variables to set. Clients log in with MLflow's own
variables, read from the environment by every process that talks to the server (sweep workers too):
nothing of them is in the config, so nothing of them is logged.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from src import UserError

USERNAME = "MLFLOW_TRACKING_USERNAME"
PASSWORD = "MLFLOW_TRACKING_PASSWORD"
_LOGIN = f"{USERNAME} and {PASSWORD}"


@contextlib.contextmanager
def refusals(server: str | None = None) -> Iterator[None]:
    """The tracking server's refusals inside this block become a UserError naming what to set.

    `server`: the address to name (default: MLflow's current tracking URI)."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        message = refusal(e, server)
        if message is None:
            raise
        raise UserError(message) from None


def refusal(error: BaseException, server: str | None = None) -> str | None:
    """What to tell the user when `error`, or an error it arose from, is a login or permission refusal."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        status = _status(cause)
        if status is not None:
            return _explain(status, str(cause), server or _current_server())
        cause = cause.__cause__ or cause.__context__
    return None


def _status(error: BaseException) -> int | None:
    code = getattr(error, "error_code", None)  # MlflowException: the REST API's error code
    if code == "UNAUTHENTICATED":
        return 401
    if code == "PERMISSION_DENIED":
        return 403
    response = getattr(error, "response", None)  # requests.HTTPError: artifact uploads and downloads
    status = getattr(response, "status_code", None)
    return status if status in (401, 403) else None


def _explain(status: int, message: str, server: str) -> str:
    user = os.environ.get(USERNAME)
    if status == 401:
        missing = [name for name in (USERNAME, PASSWORD) if not os.environ.get(name)]
        if missing:
            return f"the tracking server {server} asks for a login: set {' and '.join(missing)}"
        return (
            f"the tracking server {server} refused the login of {user!r} (wrong name or password): "
            f"check {_LOGIN}"
        )
    endpoint = re.search(r"endpoint (\S+)", message)
    reply = re.search(r"Response body: '([^'\n]*)", message)
    what = endpoint.group(1).removeprefix("/api/2.0/").removeprefix("mlflow/") if endpoint else "the request"
    said = f" ({reply.group(1).strip()})" if reply and reply.group(1).strip() else ""
    return (
        f"the tracking server {server} refused {what} to user {user!r}{said}: an admin can grant the "
        f"permission (docs/scale.md: Logins and permissions), or set {_LOGIN} to another user's login"
    )


def _current_server() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def check_uri(uri: str) -> None:
    """A login written into the server's address would be logged with every run (tracking.uri)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        address = parts._replace(netloc=host).geturl()
        raise UserError(
            f"the tracking URI holds a login, which would be logged with every run: use {address} "
            f"and set {_LOGIN}"
        )


def check_login(uri: str) -> None:
    """Log in to a tracking server before the heavy work begins: a wrong password fails in seconds.

    Needs no permission (a search sees only what the user may read); other stores are left alone.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import mlflow

    with refusals(uri):
        mlflow.MlflowClient(uri).search_experiments(max_results=1)
