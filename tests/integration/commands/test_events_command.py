"""`dicom-ops events`: one line per series and job event, by id, UIDs masked."""

from __future__ import annotations

import subprocess
import sys

from dicom_ops.db.audit import record_event
from dicom_ops.db.session import session_scope

from tests.support.jobs import add_series, job_in_status


def test_events_print_one_line_each_naming_series_and_jobs_by_id(settings, cli_env):
    with session_scope(settings.db_url) as session:
        series_id = add_series(session)
        record_event(session, "ready", "30 instances", series_id=series_id)
        job_id = job_in_status(session, "failed")
        record_event(session, "uploaded", "server task 1.2.826.0.1.3680043.8.498.77 (attempt 1)",
                     job_id=job_id)
    result = subprocess.run([sys.executable, "-m", "dicom_ops.cli", "events"], env=cli_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(f"series #{series_id}" in line and "ready: 30 instances" in line for line in lines)
    assert any(f"job {job_id}" in line and "failed: upload: server said 500" in line
               for line in lines)
    exported = next(line for line in lines if "exported" in line)
    assert "<uid>" in exported and "1.2.826.0.1.3680043" not in exported
