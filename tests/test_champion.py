"""The champion alias under concurrency: promotions at the same moment, on every kind of store, all finish
and leave the alias where promoting one by one would have put it.

The moments are forced, not hoped for: the alias writes are held until every promotion has reached them
(in SQLAlchemy, or by a lock on the PostgreSQL table behind a tracking server), and a promotion that
decided on an older list of versions is made to write last.
"""

import contextlib
import threading
import time

import mlflow
import pytest

from src import tracking
from tests.conftest import new_store, tracking_server, use_store


@pytest.fixture(scope="module")
def server_on_postgresql(tmp_path_factory, postgresql):
    """A tracking server (HTTP) on a PostgreSQL database, shared by this module's tests; its address and
    its database."""
    database = postgresql.database()
    with tracking_server(tmp_path_factory.mktemp("server"), database) as server:
        yield server, database


@pytest.fixture
def model(kind, tmp_path, postgresql, request) -> str:
    """A registered model's name in a store of this kind, as the promotions' clients see it."""
    if kind == "sqlite":
        uri = new_store(tmp_path)
    elif kind == "postgresql":
        uri = postgresql.database()
    else:
        uri = request.getfixturevalue("server_on_postgresql")[0]
    use_store(uri)
    if mlflow.get_experiment_by_name("promotions") is None:  # no artifacts are written: none go in ./mlruns
        mlflow.create_experiment("promotions", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("promotions")
    return f"digits-{request.node.name}"  # a server's store is shared by several tests


def register(model: str, accuracy: float) -> str:
    """A finished run with this validation accuracy, registered as the model's next version."""
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_metric("final_val_accuracy", accuracy)
    with contextlib.suppress(mlflow.exceptions.MlflowException):  # the first one creates the model
        client.create_registered_model(model)
    source = f"{run.info.artifact_uri}/model"
    return str(client.create_model_version(model, source, run_id=run.info.run_id).version)


def promote_in_threads(model: str, count: int) -> tuple[list, list]:
    """`count` promotions at once, each in its own thread; their results and errors."""
    results, errors = [None] * count, []

    def promote(i):
        try:
            results[i] = tracking.promote_champion(model, "final_val_accuracy")
        except Exception as e:  # noqa: BLE001 - a crashed promotion is what the test looks for
            errors.append(e)

    threads = [threading.Thread(target=promote, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results, errors


@contextlib.contextmanager
def alias_inserts_held(parties: int):
    """Every first write of the alias waits (in SQLAlchemy, just before its INSERT) until `parties` of
    them are there: each has looked for the alias and found none, so all insert it at once."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    barrier = threading.Barrier(parties, timeout=60)
    held = []

    def before_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO REGISTERED_MODEL_ALIASES"):
            held.append(statement)
            barrier.wait()

    event.listen(Engine, "before_cursor_execute", before_execute)
    try:
        yield held
    finally:
        event.remove(Engine, "before_cursor_execute", before_execute)


@contextlib.contextmanager
def alias_table_locked_for_writes(database: str, parties: int):
    """Hold a lock on PostgreSQL's alias table that lets reads through and stops writes; release it once
    `parties` writes wait for it, so that they all go at once."""
    import psycopg

    with psycopg.connect(database) as connection:
        connection.execute("LOCK TABLE registered_model_aliases IN SHARE MODE")
        waiting = []

        def release_when_all_wait():
            with psycopg.connect(database, autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    (count,) = watcher.execute(
                        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname = 'registered_model_aliases' AND NOT l.granted"
                    ).fetchone()
                    if count >= parties:
                        waiting.append(count)
                        break
                    time.sleep(0.05)
            connection.commit()  # releases the lock

        releaser = threading.Thread(target=release_when_all_wait)
        releaser.start()
        try:
            yield waiting
        finally:
            releaser.join(90)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_promotions_at_the_same_moment_all_finish_on_the_best(model):
    versions = [register(model, accuracy) for accuracy in (0.91, 0.97, 0.94)]
    with alias_inserts_held(parties=3) as held:
        results, errors = promote_in_threads(model, 3)
    assert len(held) == 3  # all three inserted the alias at once: two of them lost that race
    assert errors == []
    assert results == [versions[1]] * 3
    assert tracking.champion_version(model) == versions[1]


@pytest.mark.parametrize("kind", ["server"])
def test_promotions_through_a_server_on_postgresql_all_finish_on_the_best(model, server_on_postgresql):
    # the reported failure: the server answered the second insert with PostgreSQL's UniqueViolation
    versions = [register(model, accuracy) for accuracy in (0.91, 0.97, 0.94)]
    with alias_table_locked_for_writes(server_on_postgresql[1], parties=3) as waiting:
        results, errors = promote_in_threads(model, 3)
    assert waiting and waiting[0] >= 3  # the three writes were released together
    assert errors == []
    assert results == [versions[1]] * 3
    assert tracking.champion_version(model) == versions[1]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "server"])
def test_a_promotion_that_decided_on_fewer_versions_and_wrote_last_is_mended(model, monkeypatch):
    first = register(model, 0.95)
    decided, go_on = threading.Event(), threading.Event()
    write = mlflow.MlflowClient.set_registered_model_alias

    def held_write(self, *args, **kwargs):
        # the late promotion's first write waits until the other promotion has finished
        if threading.current_thread().name == "late" and not decided.is_set():
            decided.set()
            assert go_on.wait(60)
        return write(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "set_registered_model_alias", held_write)
    late = {}
    thread = threading.Thread(
        target=lambda: late.update(result=tracking.promote_champion(model, "final_val_accuracy")), name="late"
    )
    thread.start()
    assert decided.wait(60)  # it saw only the first version and is about to point the alias at it
    second = register(model, 0.99)
    assert tracking.promote_champion(model, "final_val_accuracy") == second
    go_on.set()
    thread.join(60)
    assert late["result"] == second != first
    assert tracking.champion_version(model) == second
