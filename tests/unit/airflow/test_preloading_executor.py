"""The embedded stack's executor loads the DAG files' imports once, before it forks its
workers, so tasks inherit them; and it does so without reading a setting or opening
anything that must not cross a fork."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

from dicom_ops.airflow.executors.preloading import (
    PreloadingLocalExecutor,
    dag_file_imports,
    preload,
)
from dicom_ops.config import REPO_ROOT

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


def test_start_imports_the_dag_files_modules_before_any_worker_exists(tmp_path, monkeypatch):
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
