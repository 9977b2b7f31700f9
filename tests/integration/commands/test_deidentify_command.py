"""`dicom-ops deidentify`: users see what would leave, and why a series would be stopped."""

import subprocess
import sys

import pydicom
import pytest
from dicom_ops.cli import main
from dicom_ops.config import REPO_ROOT, get_settings

from tests.factories import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    with_burned_in_annotation,
    write_series,
)

SMALL = SeriesGeometry(slices=3, rows=8, columns=8)


@pytest.fixture
def cache_env(cli_env, tmp_path):
    """The command keeps its compiled recipe in the user's cache: here, a temporary one."""
    return dict(cli_env, XDG_CACHE_HOME=str(tmp_path / "cache"))


@pytest.fixture
def in_process_env(monkeypatch, cache_env):
    for name, value in cache_env.items():
        if name.startswith(("DICOM_OPS_", "XDG_")):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def two_patients(folder):
    for index in (1, 2):
        write_series(make_ct_series(synthetic_patient(index), SMALL), folder / f"p{index}")
    return folder


def test_a_folder_is_de_identified_and_the_summary_names_attributes_never_values(tmp_path,
                                                                                 cache_env):
    source = two_patients(tmp_path / "in")
    result = subprocess.run(
        [sys.executable, "-m", "dicom_ops.cli", "deidentify", str(source), str(tmp_path / "out")],
        env=cache_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "de-identified 6 files in 2 series" in result.stdout
    assert "removed" in result.stdout and "(0010,1040) PatientAddress" in result.stdout
    assert "egress check, series 2: passed" in result.stdout
    for index in (1, 2):
        for phi in synthetic_patient(index).phi_strings():
            assert phi not in result.stdout + result.stderr
    files = sorted((tmp_path / "out").glob("series-00*/*.dcm"))
    assert len(files) == 6
    assert all(pydicom.dcmread(f).PatientID.startswith("DRAW-") for f in files)
    assert list((tmp_path / "cache" / "dicom-ops").glob("deid-*.marshal"))


def test_without_a_configured_secret_a_throwaway_key_is_used(tmp_path, in_process_env,
                                                             monkeypatch, capsys):
    monkeypatch.delenv("DICOM_OPS_SECRET_KEY")
    get_settings.cache_clear()
    write_series(make_ct_series(synthetic_patient(3), SMALL), tmp_path / "in")
    pseudonyms = []
    for run in ("a", "b"):
        assert main(["deidentify", str(tmp_path / "in"), str(tmp_path / run)]) == 0
        assert "throwaway" in capsys.readouterr().out
        pseudonyms.append(pydicom.dcmread(next((tmp_path / run).iterdir())).PatientID)
    assert pseudonyms[0] != pseudonyms[1]


def test_what_the_egress_check_would_stop_is_shown(tmp_path, in_process_env, capsys):
    recipe = tmp_path / "leaky.dicom"
    recipe.write_text((REPO_ROOT / "include" / "deid" / "deid.dicom").read_text()
                      + "KEEP ImageComments\n")
    write_series(make_ct_series(synthetic_patient(4), SMALL), tmp_path / "in")
    code = main(["deidentify", "--recipe", str(recipe), str(tmp_path / "in"),
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "egress check, series 1: FAILED" in err
    assert "image 1 of 3: (0020,4000) ImageComments: patient name part" in err
    assert synthetic_patient(4).family_name not in err


@pytest.mark.parametrize(("prepare", "message"), [
    (lambda tmp: (tmp / "out").mkdir() or (tmp / "out" / "x").write_text(""), "is not empty"),
    (lambda tmp: write_series([with_burned_in_annotation(ds) for ds in make_ct_series(
        synthetic_patient(5), SMALL)], tmp / "in"), "burned-in annotation"),
    (lambda tmp: (tmp / "in" / "notes.txt").write_text("no DICOM here"), "no DICOM files"),
])
def test_refusals_are_one_clear_line(tmp_path, in_process_env, capsys, prepare, message):
    (tmp_path / "in").mkdir()
    prepare(tmp_path)
    if not list((tmp_path / "in").iterdir()):
        write_series(make_ct_series(synthetic_patient(6), SMALL), tmp_path / "in")
    assert main(["deidentify", str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dicom-ops deidentify: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_broken_recipe_is_named_with_its_line(tmp_path, in_process_env, capsys):
    recipe = tmp_path / "broken.dicom"
    recipe.write_text("FORMAT dicom\n%header\nREMOVE ALL\nKEEP\n")
    write_series(make_ct_series(synthetic_patient(7), SMALL), tmp_path / "in")
    assert main(["deidentify", "--recipe", str(recipe), str(tmp_path / "in"),
                 str(tmp_path / "out")]) == 1
    assert f"{recipe}, line 4: KEEP needs a field" in capsys.readouterr().err
