"""The embedded stack's executor loads the DAG files' imports once, before it forks its
workers, so tasks inherit them; and it does so without reading a setting or opening
anything that must not cross a fork. It forks no worker before the Execution API answers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading

from dicom_ops.airflow.executors.preloading import (
    PreloadingLocalExecutor,
    dag_file_imports,
    preload,
)
from dicom_ops.config import REPO_ROOT

from tests.support import execution_api as stand_in

late_execution_api, live_execution_api = (stand_in.late_execution_api,
                                          stand_in.live_execution_api)

DAGS = REPO_ROOT / "dags"


def test_our_dag_files_imports_load_without_settings_threads_or_open_files():
    # a fresh interpreter, so that nothing the test session imported hides an import
    script = textwrap.dedent(f"""
        import json, os, sys, threading
        from pathlib import Path
        from dicom_ops.airflow.executors.preloading import dag_file_imports, preload
        files, threads = set(os.listdir("/proc/self/fd")), threading.active_count()
        statements = dag_file_imports(Path({str(DAGS)!r}))
        loaded = preload(statements)
        from dicom_ops.config import get_settings
        print(json.dumps({{
            "statements": len(statements), "loaded": loaded,
            "modules": [m for m in ("pydicom", "pynetdicom", "sqlalchemy",
                                    "dicom_ops.airflow.operators.deidentify",
                                    "dicom_ops.airflow.operators.draw") if m in sys.modules],
            "settings_read": get_settings.cache_info().currsize,
            "new_threads": threading.active_count() - threads,
            "new_files": sorted(set(os.listdir("/proc/self/fd")) - files)}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statements"] > 0 and report["loaded"] == report["statements"]
    assert report["modules"] == ["pydicom", "pynetdicom", "sqlalchemy",
                                 "dicom_ops.airflow.operators.deidentify",
                                 "dicom_ops.airflow.operators.draw"]
    assert report["settings_read"] == 0
    assert report["new_threads"] == 0
    assert report["new_files"] == []


def test_a_broken_dag_file_or_import_is_skipped_and_named(tmp_path, caplog):
    (tmp_path / "good.py").write_text("from __future__ import annotations\n"
                                      "import json\nfrom os import path\n")
    (tmp_path / "missing.py").write_text("import no_such_module_here\n")
    (tmp_path / "broken.py").write_text("import json\ndef (:\n")
    statements = dag_file_imports(tmp_path)
    with caplog.at_level(logging.WARNING, logger="dicom_ops.airflow.executors.preloading"):
        loaded = preload(statements)
    # the broken file is the DAG processor's to report; the missing module is named
    assert len(statements) == 3 and loaded == 2
    assert "import no_such_module_here" in caplog.text
    assert "ModuleNotFoundError" in caplog.text


def test_start_imports_the_dag_files_modules_before_any_worker_exists(tmp_path, monkeypatch,
                                                                     live_execution_api):
    # given a DAG folder whose one import records where and when it was first imported
    marker = tmp_path / "marker.json"
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "heavy_for_tasks.py").write_text(textwrap.dedent(f"""
        import json, multiprocessing, os
        with open({str(marker)!r}, "a") as out:
            out.write(json.dumps([os.getpid(), len(multiprocessing.active_children())]) + "\\n")
    """))
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "a_dag.py").write_text("import heavy_for_tasks\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    executor = PreloadingLocalExecutor(parallelism=2)
    # when the executor starts
    executor.start()
    try:
        workers = list(executor.workers.values())
        # then the module was imported once, in this process, with no worker yet forked,
        # and the workers (forked afterwards) are running
        assert [json.loads(line) for line in marker.read_text().splitlines()] == [
            [__import__("os").getpid(), 0]]
        assert len(workers) == 2 and all(worker.is_alive() for worker in workers)
    finally:
        executor.end()
        sys.modules.pop("heavy_for_tasks", None)


def test_no_worker_is_forked_before_the_execution_api_answers(tmp_path, monkeypatch,
                                                              late_execution_api):
    # given the API server still starting (nothing listens yet), as on a first `make run`
    (tmp_path / "dags").mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    executor = PreloadingLocalExecutor(parallelism=2)
    starting = threading.Thread(target=executor.start, daemon=True)
    starting.start()
    try:
        # then the executor has no worker a task could be sent to
        starting.join(timeout=1.0)
        assert starting.is_alive() and not getattr(executor, "workers", {})
        # when the API server answers, the workers start
        late_execution_api.listen()
        starting.join(timeout=30)
        assert not starting.is_alive()
        assert late_execution_api.health_checks >= 1
        assert len(executor.workers) == 2
        assert all(worker.is_alive() for worker in executor.workers.values())
    finally:
        if not starting.is_alive():
            executor.end()
