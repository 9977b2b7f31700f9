"""From ready series to jobs: real series folders, the shipped templates, the app DB."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.db.models import Event, Job, Series
from dicom_ops.db.session import session_scope
from dicom_ops.jobs import (
    ImageRange,
    JobError,
    SeriesChoice,
    claim_ready_series,
    create_job,
    images_for_job,
    plan_ready_series,
    plan_series,
)
from dicom_ops.templates import load_templates, parse_template_text
from sqlalchemy import select

from tests.factories import (
    SeriesGeometry,
    as_localizer,
    make_ct_series,
    synthetic_patient,
    write_non_dicom,
    write_series,
)
from tests.support.jobs import add_series

TEMPLATES = load_templates(REPO_ROOT / "include" / "templates")
SMALL = SeriesGeometry(slices=4, rows=8, columns=8)


def ready_series(session, folder: Path, datasets) -> int:
    write_series(datasets, folder)
    first = datasets[0]
    return add_series(session, study_uid=str(first.StudyInstanceUID),
                      series_uid=str(first.SeriesInstanceUID), folder=str(folder))


def plan(url: str, series_id: int, templates=TEMPLATES) -> int | None:
    with session_scope(url) as session:
        return plan_series(session, series_id, templates)


def series_state(url: str, series_id: int) -> tuple[str, str | None]:
    with session_scope(url) as session:
        series = session.get(Series, series_id)
        return series.state, series.state_detail


def test_a_thorax_ct_becomes_a_thorax_job_and_the_series_is_done(db_url, tmp_path):
    # given a ready synthetic thorax CT
    with session_scope(db_url) as session:
        series_id = ready_series(session, tmp_path / "s1", make_ct_series(geometry=SMALL))
    # when the planner claims and plans it
    assert claim_ready_series(db_url, 10) == [series_id]
    job_id = plan(db_url, series_id)
    # then one auto-range job for the thorax template is queued
    assert job_id is not None
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        assert (job.template, job.status, job.forced) == ("Thorax OARs", "in_queue", False)
        assert [(link.series_id, link.range_start) for link in job.series_links] == [
            (series_id, None)]
        planned = session.scalars(select(Event).where(Event.series_id == series_id,
                                                      Event.kind == "planned")).one()
        assert planned.message == f"done: job {job_id} (Thorax OARs)"
    assert series_state(db_url, series_id) == ("done", f"job {job_id} (Thorax OARs)")


def test_a_duplicate_is_not_an_error_the_series_names_the_existing_job(sqlite_url, tmp_path):
    # given a series that already has a queued thorax job (e.g. created by hand)
    with session_scope(sqlite_url) as session:
        series_id = ready_series(session, tmp_path / "s1", make_ct_series(geometry=SMALL))
        existing = create_job(session, template="Thorax OARs",
                              series=[SeriesChoice(series_id)]).id
    claim_ready_series(sqlite_url, 10)
    # when it is planned, then no second job; the series is done and names the first
    assert plan(sqlite_url, series_id) is None
    assert series_state(sqlite_url, series_id) == ("done", f"duplicate of job {existing}")
    with session_scope(sqlite_url) as session:
        assert session.scalars(select(Job.id)).all() == [existing]


def test_no_matching_template_marks_the_series_ignored_no_template(sqlite_url, tmp_path):
    knee = make_ct_series(geometry=SMALL, body_part="KNEE", study_description="CT KNEE")
    with session_scope(sqlite_url) as session:
        series_id = ready_series(session, tmp_path / "knee", knee)
    claim_ready_series(sqlite_url, 10)
    assert plan(sqlite_url, series_id) is None
    assert series_state(sqlite_url, series_id) == ("ignored", "no template")


def test_a_tie_marks_the_series_as_a_conflict_naming_the_templates(sqlite_url, tmp_path):
    rival_text = (REPO_ROOT / "include" / "templates" / "thorax.yml").read_text().replace(
        "name: Thorax OARs", "name: Lung SBRT")
    templates = [*TEMPLATES, parse_template_text(rival_text, "lung.yml")]
    with session_scope(sqlite_url) as session:
        series_id = ready_series(session, tmp_path / "s1", make_ct_series(geometry=SMALL))
    claim_ready_series(sqlite_url, 10)
    assert plan(sqlite_url, series_id, templates) is None
    assert series_state(sqlite_url, series_id) == ("error", "conflict: Lung SBRT, Thorax OARs")
    with session_scope(sqlite_url) as session:
        assert session.scalars(select(Job)).all() == []


def test_the_header_comes_from_an_image_not_from_a_leading_localizer(sqlite_url, tmp_path):
    # given a series whose first file (by name) is a scout, which the thorax rules refuse
    datasets = make_ct_series(geometry=SMALL)
    as_localizer(datasets[0])
    write_series(datasets, tmp_path / "s1")
    scout = next((tmp_path / "s1").glob(f"*{datasets[0].SOPInstanceUID}*"))
    scout.rename(scout.with_name("0000-scout.dcm"))
    with session_scope(sqlite_url) as session:
        series_id = add_series(session, folder=str(tmp_path / "s1"))
    claim_ready_series(sqlite_url, 10)
    assert plan(sqlite_url, series_id) is not None


def test_a_series_of_only_localizers_is_ignored_as_no_image(sqlite_url, tmp_path):
    scouts = [as_localizer(ds) for ds in make_ct_series(geometry=SMALL)[:2]]
    with session_scope(sqlite_url) as session:
        series_id = ready_series(session, tmp_path / "scouts", scouts)
    claim_ready_series(sqlite_url, 10)
    assert plan(sqlite_url, series_id) is None
    assert series_state(sqlite_url, series_id) == ("ignored", "no image to segment")


def test_a_folder_without_readable_dicom_is_an_error(sqlite_url, tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    write_non_dicom(folder / "scanner.log")
    with session_scope(sqlite_url) as session:
        series_id = add_series(session, folder=str(folder))
    claim_ready_series(sqlite_url, 10)
    assert plan(sqlite_url, series_id) is None
    assert series_state(sqlite_url, series_id) == ("error", "no readable DICOM file")


def test_only_claimed_series_are_planned(sqlite_url, tmp_path):
    with session_scope(sqlite_url) as session:
        series_id = ready_series(session, tmp_path / "s1", make_ct_series(geometry=SMALL))
    with pytest.raises(JobError, match=f"series #{series_id} is ready: only claimed"):
        plan(sqlite_url, series_id)


def test_plan_ready_series_turns_every_ready_series_into_its_outcome(sqlite_url, tmp_path):
    # given two thorax CTs of two patients and one knee CT, all ready
    with session_scope(sqlite_url) as session:
        thorax = [ready_series(session, tmp_path / f"t{i}",
                               make_ct_series(synthetic_patient(i), SMALL)) for i in (1, 2)]
        knee = ready_series(session, tmp_path / "knee",
                            make_ct_series(synthetic_patient(3), SMALL, body_part="KNEE",
                                           study_description="CT KNEE"))
    # when the planner runs
    job_ids = plan_ready_series(sqlite_url, TEMPLATES, limit=10)
    # then one job per thorax CT, and the knee is visibly ignored
    assert len(job_ids) == 2
    assert [series_state(sqlite_url, s)[0] for s in thorax] == ["done", "done"]
    assert series_state(sqlite_url, knee) == ("ignored", "no template")
    assert plan_ready_series(sqlite_url, TEMPLATES, limit=10) == []


def test_images_for_a_job_follow_each_series_range_in_job_order(sqlite_url, tmp_path):
    # given a two-series job: the first reversed with a step, the second auto after a scout
    first = make_ct_series(synthetic_patient(1), SMALL)
    second = make_ct_series(synthetic_patient(1), SMALL, series_number=2)
    as_localizer(second[0])
    with session_scope(sqlite_url) as session:
        a = ready_series(session, tmp_path / "a", first)
        b = ready_series(session, tmp_path / "b", second)
        job_id = create_job(session, template="Thorax OARs",
                            series=[SeriesChoice(a, ImageRange(4, 2, -2)), SeriesChoice(b)]).id
    # when preparation asks for the job's images
    with session_scope(sqlite_url) as session:
        selected = images_for_job(session, job_id)
    # then series order, range order and the scout left out
    assert [s.series_id for s in selected] == [a, b]
    assert [i.instance_number for i in selected[0].images] == [4, 2]
    assert [i.instance_number for i in selected[1].images] == [2, 3, 4]
