"""Airflow's LocalExecutor, with the DAG files' imports loaded once, before it forks.

Each task runs in a process forked from one of the executor's workers, and begins by
loading its DAG file. Ours import the operators, and through them pydicom, numpy, deid,
pynetdicom and SQLAlchemy: about 1 s on an idle core and several seconds on the two
saturated cores of a burst, paid again by every one of a burst's ~120 tasks. The
LocalExecutor forks all its workers in ``start()``. Running the DAG files' import
statements just before that means every task inherits those modules already loaded
(copy on write), and its DAG file's imports cost it nothing.

Only import statements run here, never the DAG files themselves: no setting is read and
no engine, connection or thread is opened, so nothing that must not cross a fork is
shared. A module that fails to import is logged and skipped; the task that needs it
imports it again and fails where the UI shows it, not the scheduler.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from airflow.configuration import conf
from airflow.executors.local_executor import LocalExecutor

from dicom_ops.airflow.executors.execution_api import wait_for_execution_api

log = logging.getLogger(__name__)


def dag_file_imports(dags_folder: Path) -> list[ast.stmt]:
    """The top-level import statements of the DAG files in ``dags_folder``, in file order.

    ``from __future__`` is left out (it only means something at the top of a module), and
    so is a file that cannot be read or parsed: the DAG processor reports it, by name."""
    statements: list[ast.stmt] = []
    for path in sorted(dags_folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        statements += [node for node in tree.body
                       if isinstance(node, ast.Import)
                       or isinstance(node, ast.ImportFrom) and node.module != "__future__"]
    return statements


def preload(statements: list[ast.stmt]) -> int:
    """Run each import statement as its DAG file would; returns how many succeeded.

    The statement itself runs, not ``import_module`` of a name, so ``from airflow.sdk
    import DAG`` loads what the lazy ``airflow.sdk`` package would load for the task."""
    loaded = 0
    for statement in statements:
        code = compile(ast.Module(body=[statement], type_ignores=[]), "<dag imports>", "exec")
        try:
            exec(code, {})  # noqa: S102 - our own DAG folder's import lines, nothing else
        except Exception as error:  # noqa: BLE001 - the scheduler must go on without it
            log.warning("Not preloaded for tasks: %s (%s: %s)", ast.unparse(statement),
                        type(error).__name__, error)
        else:
            loaded += 1
    return loaded


def preload_dag_folder(before: str) -> None:
    """Preload the imports of the configured DAG folder's files, and log how many loaded
    ``before`` what. One home for both executors' preload: the LocalExecutor's here and
    the Celery workers' (``celery_config``)."""
    statements = dag_file_imports(Path(conf.get("core", "dags_folder")))
    loaded = preload(statements)
    log.info("Preloaded %d of %d DAG-file imports before %s", loaded, len(statements), before)


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose worker processes start with the DAG files' imports loaded, and
    only once the Execution API answers (``execution_api``)."""

    def start(self) -> None:
        preload_dag_folder("forking workers")
        wait_for_execution_api()
        super().start()
