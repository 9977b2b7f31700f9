"""`dicom-ops cleanup`: the same run as draw_cleanup, by hand, with a dry run first."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from dicom_ops.db.models import Job, Transfer, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.pipeline.workspace import job_work_dir

from tests.support.jobs import job_in_status


def cleanup(cli_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = dict(cli_env, DICOM_OPS_CLEANUP_WATERMARK="0")
    return subprocess.run([sys.executable, "-m", "dicom_ops.cli", "cleanup", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_dry_run_then_real_run_of_the_cleanup_command(settings, cli_env):
    with session_scope(settings.db_url) as session:
        job_id = job_in_status(session, "cancelled")
        session.add(Transfer(job_id=job_id, status="pending"))
        session.get(Job, job_id).updated_at = utcnow() - timedelta(hours=5)
    folder = job_work_dir(settings, job_id)
    folder.mkdir(parents=True)
    (folder / "upload.zip").write_bytes(b"\0" * 4096)

    dry = cleanup(cli_env, "--dry-run", "--older-than-hours", "4", "--json")

    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert (summary["dry_run"], summary["removed"], summary["bytes_freed"]) == (True, 1, 4096)
    assert folder.exists()

    real = cleanup(cli_env, "--older-than-hours", "4")

    assert real.returncode == 0, real.stderr
    assert not folder.exists()
    assert f"work folders: retention 4 h; removed 1 (4.0 KiB) [job {job_id}]" in real.stdout


def test_a_negative_override_is_refused(cli_env):
    result = cleanup(cli_env, "--older-than-hours", "-1")

    assert result.returncode == 1
    assert "--older-than-hours must be 0 or more" in result.stderr
