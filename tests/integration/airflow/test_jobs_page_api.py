"""The jobs page's app behind Airflow's own auth: 401 without a token, 403 for a user who
may not act, pseudonyms for viewers, CSRF-safe actions, paging. Tokens are real JWTs from
Airflow's auth manager (the simple auth manager, as in `make run`), checked by the same
dependency as Airflow's REST API; the app is mounted at /dicom-ops as the API server does."""

from __future__ import annotations

import re

import pytest
from dicom_ops.db.models import Event, Job, SubjectMap
from dicom_ops.db.session import session_scope
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.subject import encrypt_subject
from sqlalchemy import select

from tests.conftest import TEST_SECRET
from tests.dags.conftest import airflow_db  # noqa: F401
from tests.support.jobs import job_in_status

PATIENT = {"PatientName": "TESTPATIENT^JOBSPAGE", "PatientID": "PID-JOBSPAGE-42"}
PSEUDONYM = "DRAW-BCDFGHJKLM"


@pytest.fixture
def page(airflow_db, settings, monkeypatch):  # noqa: F811
    """A client of the app as mounted by Airflow, and tokens for an admin, a viewer and a
    user with no role."""
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "jobs-page-test-jwt-secret-" + "0123456789abcdef" * 4)
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from dicom_ops.airflow.ui.app import create_app
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    purge_cached_app()
    manager = init_auth_manager()
    airflow_app = FastAPI()
    airflow_app.mount("/dicom-ops", create_app(lambda: settings))
    tokens = {role: manager.generate_jwt(SimpleAuthManagerUser(username=f"{role}1", role=role))
              for role in ("admin", "viewer")}
    tokens["nobody"] = manager.generate_jwt(SimpleAuthManagerUser(username="nobody1", role=None))
    yield TestClient(airflow_app), tokens
    purge_cached_app()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SERIES_UID = "1.2.826.0.1.3680043.8.498.17017"


def _delivered_job(settings) -> int:
    from dicom_ops.db.models import Transfer

    from tests.support.jobs import add_series

    with session_scope(settings.db_url) as session:
        series_id = add_series(session, series_uid=SERIES_UID)
        job_id = job_in_status(session, "finished", series_id=series_id)
        session.add(Transfer(job_id=job_id, status="confirmed",
                             delivered_path=f"/var/datastore/1.2.3.4/{SERIES_UID}/RS.2.25.9.dcm"))
        session.add(SubjectMap(job_id=job_id, pseudonym=PSEUDONYM, date_offset_days=-100,
                               encrypted=encrypt_subject(PATIENT, DeidKeys.from_secret(TEST_SECRET))))
    return job_id


@pytest.mark.parametrize("method,path", [
    ("get", "/dicom-ops/jobs"), ("get", "/dicom-ops/jobs/1"), ("get", "/dicom-ops/series"),
    ("get", "/dicom-ops/api/jobs"), ("get", "/dicom-ops/api/jobs/1"),
    ("get", "/dicom-ops/api/series"), ("post", "/dicom-ops/api/jobs/1/resend"),
    ("post", "/dicom-ops/jobs/1/patient"), ("get", "/dicom-ops/jobs/1/confirm/resend"),
])
def test_every_endpoint_answers_401_without_a_token(page, method, path):
    client, _ = page
    response = getattr(client, method)(path)
    assert response.status_code == 401
    if "/api/" in path:
        assert response.json() == {"detail": "Not authenticated"}
    else:  # a page says it in words, inside the Airflow UI's frame
        assert "Not signed in" in response.text and "Sign in to Airflow" in response.text


def test_a_forged_token_and_a_user_without_a_role_are_refused(page):
    client, tokens = page
    assert client.get("/dicom-ops/api/jobs", headers=_bearer("not.a.jwt")).status_code == 403
    refused = client.get("/dicom-ops/api/jobs", headers=_bearer(tokens["nobody"]))
    assert refused.status_code == 403 and "may not read" in refused.json()["detail"]


def test_a_viewer_reads_pseudonyms_and_may_not_act_or_decrypt(page, settings):
    client, tokens = page
    job_id = _delivered_job(settings)
    viewer = _bearer(tokens["viewer"])
    html = client.get(f"/dicom-ops/jobs/{job_id}", headers=viewer)
    assert html.status_code == 200 and PSEUDONYM in html.text
    assert PATIENT["PatientName"] not in html.text and "Resend" not in html.text
    assert html.headers["cache-control"] == "no-store"
    as_json = client.get(f"/dicom-ops/api/jobs/{job_id}", headers=viewer)
    assert as_json.json()["pseudonym"] == PSEUDONYM
    # nor original UIDs, as fields or inside the delivered file's path
    listed = client.get("/dicom-ops/api/jobs", headers=viewer).text
    for text in (html.text, as_json.text, listed):
        assert SERIES_UID not in text and "1.2.3.4" not in text
    assert "/var/datastore/<uid>/<uid>/RS.<uid>.dcm" in as_json.text
    admin = client.get(f"/dicom-ops/api/jobs/{job_id}", headers=_bearer(tokens["admin"]))
    assert SERIES_UID in admin.text
    for path in (f"/dicom-ops/api/jobs/{job_id}/resend", f"/dicom-ops/jobs/{job_id}/patient"):
        refused = client.post(path, headers=viewer)
        assert refused.status_code == 403 and "trigger the DAG draw_export" in refused.text
    with session_scope(settings.db_url) as session:
        assert session.scalar(select(Job.id).where(Job.resend_of == job_id)) is None


def test_an_admin_sees_the_patient_only_on_demand_and_never_in_a_url(page, settings):
    client, tokens = page
    job_id = _delivered_job(settings)
    client.cookies.set("_token", tokens["admin"])  # as the Airflow UI's session does
    shown = client.get(f"/dicom-ops/jobs/{job_id}")
    assert PATIENT["PatientID"] not in shown.text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', shown.text).group(1)
    revealed = client.post(f"/dicom-ops/jobs/{job_id}/patient", data={"csrf_token": token})
    assert revealed.status_code == 200
    assert PATIENT["PatientName"] in revealed.text and PATIENT["PatientID"] in revealed.text
    assert str(revealed.url).endswith(f"/dicom-ops/jobs/{job_id}/patient")


def test_cookie_actions_need_the_csrf_token_and_are_audited_with_the_user(page, settings):
    client, tokens = page
    job_id = _delivered_job(settings)
    client.cookies.set("_token", tokens["admin"])
    # a form posted from another site carries the cookie but not our token
    forged = client.post(f"/dicom-ops/jobs/{job_id}/resend", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403 and "CSRF" in forged.text
    confirm = client.get(f"/dicom-ops/jobs/{job_id}/confirm/resend")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', confirm.text).group(1)
    done = client.post(f"/dicom-ops/jobs/{job_id}/resend", data={"csrf_token": token},
                       follow_redirects=False)
    assert done.status_code == 303
    with session_scope(settings.db_url) as session:
        new_id = session.scalar(select(Job.id).where(Job.resend_of == job_id))
        actors = set(session.scalars(select(Event.actor).where(Event.job_id == new_id)))
    assert done.headers["location"] == f"/dicom-ops/jobs/{new_id}"
    assert actors == {"ui:admin1"}
    # the lifecycle's refusal reaches the user as a conflict naming the job and its status
    refused = client.post(f"/dicom-ops/jobs/{new_id}/invalidate", data={"csrf_token": token})
    assert refused.status_code == 409 and f"job {new_id} is in_queue" in refused.text


def test_bearer_actions_need_no_csrf_token_and_cancel_and_invalidate_work(page, settings):
    client, tokens = page
    admin = _bearer(tokens["admin"])
    with session_scope(settings.db_url) as session:
        queued = job_in_status(session, "in_queue")
        finished = job_in_status(session, "finished")
    assert client.post(f"/dicom-ops/api/jobs/{queued}/cancel", headers=admin).status_code == 200
    assert client.post(f"/dicom-ops/api/jobs/{finished}/invalidate", headers=admin).status_code == 200
    assert client.post("/dicom-ops/api/jobs/999999/resend", headers=admin).status_code == 404
    assert client.post(f"/dicom-ops/api/jobs/{queued}/delete", headers=admin).status_code == 404
    with session_scope(settings.db_url) as session:
        assert session.get(Job, queued).status == "cancelled"
        assert session.get(Job, finished).status == "invalidated"


def test_api_pages_jobs_newest_first_with_filters(page, settings):
    client, tokens = page
    viewer = _bearer(tokens["viewer"])
    with session_scope(settings.db_url) as session:
        failed = [job_in_status(session, "failed") for _ in range(3)]
        queued = [job_in_status(session, "in_queue", template="Pelvis") for _ in range(4)]
    first = client.get("/dicom-ops/api/jobs?limit=3", headers=viewer).json()
    assert [j["id"] for j in first["jobs"]] == queued[::-1][:3] and first["total"] == 7
    second = client.get(f"/dicom-ops/api/jobs?limit=3&before={first['older_than']}",
                        headers=viewer).json()
    assert [j["id"] for j in second["jobs"]] == [queued[0], failed[2], failed[1]]
    only_failed = client.get("/dicom-ops/api/jobs?status=failed", headers=viewer).json()
    assert [j["id"] for j in only_failed["jobs"]] == failed[::-1]
    assert only_failed["jobs"][0]["error"] == "server said 500"
    bad = client.get("/dicom-ops/api/jobs?from=yesterday", headers=viewer)
    assert bad.status_code == 422 and "from='yesterday'" in bad.json()["detail"]
    html = client.get("/dicom-ops/jobs?template=Pelvis", headers=viewer).text
    assert html.count('<tr data-job-id=') == 4 and "<svg" in html and "p50" not in html


def test_the_banner_of_make_run_points_at_the_plugins_nav_entry():
    from dicom_ops.airflow.ui.plugin import NAV_ROUTE, URL_PREFIX, DicomJobsPlugin
    from dicom_ops.stack import JOBS_PAGE_PATH

    assert JOBS_PAGE_PATH == f"/plugin/{NAV_ROUTE}"
    (view,) = DicomJobsPlugin.external_views
    assert view["name"] == "DICOM jobs" and view["href"] == f"{URL_PREFIX}/jobs"
    assert DicomJobsPlugin.fastapi_apps[0]["url_prefix"] == "/dicom-ops"


def test_the_series_view_shows_a_no_template_series_and_the_rules_that_failed(page, settings):
    from dicom_ops.db.models import Series

    from tests.factories import SeriesGeometry, make_ct_series, write_series
    from tests.support.jobs import add_series

    client, tokens = page
    folder = settings.data_root / "datastore" / "knee"
    datasets = make_ct_series(geometry=SeriesGeometry(slices=2, rows=8, columns=8),
                              body_part="KNEE", study_description="CT KNEE")
    write_series(datasets, folder)
    with session_scope(settings.db_url) as session:
        series_id = add_series(session, folder=str(folder), state="ignored")
        session.get(Series, series_id).state_detail = "no template"
        add_series(session, state="done")
    viewer = _bearer(tokens["viewer"])
    listed = client.get("/dicom-ops/api/series", headers=viewer).json()["series"]
    assert [(s["id"], s["detail"]) for s in listed] == [(series_id, "no template")]
    html = client.get(f"/dicom-ops/series/{series_id}", headers=viewer).text
    assert "no template matches" in html
    assert "Thorax OARs" in html and "BodyPartExamined" in html and "KNEE" in html
    assert client.get("/dicom-ops/series/999999", headers=viewer).status_code == 404
