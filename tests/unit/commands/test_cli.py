import subprocess
import sys

import pydicom
from dicom_ops.cli import main
from dicom_ops.db.session import head_revision


def test_help_lists_the_subcommands(capsys):
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    for command in ("config", "db", "sample"):
        assert command in out


def test_bad_setting_fails_the_command_with_one_clear_line(cli_env):
    env = dict(cli_env, DICOM_OPS_LISTENER_PORT="eleven")
    result = subprocess.run([sys.executable, "-m", "dicom_ops.cli", "config"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "DICOM_OPS_LISTENER_PORT='eleven' is invalid: expected an integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_the_app_db(cli_env, data_root):
    env = dict(cli_env, DICOM_OPS_DB_URL=f"sqlite:///{data_root / 'fresh.sqlite'}")
    result = subprocess.run([sys.executable, "-m", "dicom_ops.cli", "db", "upgrade"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"app DB at revision {head_revision()}" in result.stdout  # the newest
    assert (data_root / "fresh.sqlite").exists()


def test_sample_writes_readable_series(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path), "--patients", "2", "--slices", "3"]) == 0
    files = sorted(tmp_path.glob("patient*/*.dcm"))
    assert len(files) == 6
    patients = {str(pydicom.dcmread(f).PatientID) for f in files}
    assert len(patients) == 2
