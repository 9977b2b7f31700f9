"""The "DICOM jobs" page: a FastAPI app that Airflow's API server mounts at ``/dicom-ops``.

Pages (server-rendered HTML, opened from the nav entry inside the Airflow UI):
``/jobs`` (table, filters, plots), ``/jobs/{id}`` (events, stages, transfer, delivered
file, the job's Airflow tasks), ``/series`` and ``/series/{id}`` (series that were not
sent, and why). JSON under ``/api/``: ``GET /api/jobs``, ``GET /api/jobs/{id}``,
``POST /api/jobs/{id}/resend|cancel|invalidate``, ``GET /api/series``.

Every route depends on ``access.reader``; actions also need ``may_act`` and (from a
browser) the CSRF token. Actions call the same domain functions as ``dicom-ops jobs``,
with the Airflow user as the audit log's actor. Responses are ``no-store``: a page that
showed a patient's name is not kept in the browser's cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.ui import access, plots
from dicom_ops.airflow.ui.access import Reader
from dicom_ops.airflow.ui.task_links import task_links
from dicom_ops.config import Settings
from dicom_ops.db.models import JOB_STATUSES, Job, Series, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.jobs import JobError, board, cancel_job, invalidate_job, resend_job, stats
from dicom_ops.jobs.queries import job_details
from dicom_ops.pipeline.errors import redact_identifiers
from dicom_ops.templates import TemplateError, load_templates

PLOT_DAYS = 30
ACTIONS: dict[str, Callable[..., Any]] = {
    "resend": resend_job, "cancel": cancel_job, "invalidate": invalidate_job}
QUESTIONS = {
    "resend": "Its series are sent again as a new job (the same template, ranges and priority).",
    "cancel": "It will not be sent. Only a queued job can be cancelled.",
    "invalidate": "Its result is marked as not to be used. The delivered file stays where it is.",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ORIGINAL_UID_FIELDS = {"series_uid", "study_uid"}
PATH_FIELDS = {"delivered_path"}

_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))


def create_app(settings: Callable[[], Settings] = task_settings) -> FastAPI:
    """The plugin's app; ``settings`` gives the app DB and the secret (tests pass theirs)."""
    app = FastAPI(title="dicom-ops jobs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        """JSON for the API; for the pages, a page that says what went wrong in words."""
        if request.url.path.startswith(f"{request.scope.get('root_path', '')}/api/"):
            return JSONResponse({"detail": exc.detail}, exc.status_code,
                                headers={**NO_STORE, **(exc.headers or {})})
        html = _templates.get_template("error.html").render(
            base=request.scope.get("root_path", "").rstrip("/"), status=exc.status_code,
            detail=exc.detail)
        return HTMLResponse(html, exc.status_code, headers={**NO_STORE, **(exc.headers or {})})

    @contextmanager
    def app_db() -> Iterator[Session]:
        with session_scope(settings().db_url) as session:
            yield session

    def secret() -> bytes:
        return settings().require_secret_key()

    def render(request: Request, name: str, user: access.PageUser, **values: Any) -> HTMLResponse:
        html = _templates.get_template(name).render(
            base=request.scope.get("root_path", "").rstrip("/"), user=user,
            csrf_token=access.csrf_token(user.name, secret()), csrf_field=access.CSRF_FIELD,
            when=_when, duration=_duration, **values)
        return HTMLResponse(html, headers=NO_STORE)

    # --- pages ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home(request: Request, user: Reader) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/jobs",
                                status.HTTP_303_SEE_OTHER)

    @app.get("/jobs", response_class=HTMLResponse)
    def jobs_page(request: Request, user: Reader,
                  job_status: str | None = Query(None, alias="status"),
                  template: str | None = None, created_from: str | None = Query(None, alias="from"),
                  created_to: str | None = Query(None, alias="to"), before: int | None = None,
                  after: int | None = None) -> HTMLResponse:
        job_filter = _filter(job_status, template, created_from, created_to)
        until = utcnow()
        since = until - timedelta(days=PLOT_DAYS)
        with app_db() as session:
            page = board.page_of_jobs(session, job_filter, before=before, after=after)
            templates_used = board.templates_in_use(session)
            turnaround = stats.turnaround(session, since)
            per_day = stats.jobs_per_day(session, since, until)
            failures = stats.failures_by_stage(session, since)
        page = board.JobPage(_for_user(page.rows, user), page.total, page.newer_than,
                             page.older_than)
        return render(request, "jobs.html", user, page=page, job_filter=job_filter,
                      statuses=JOB_STATUSES, templates_used=templates_used,
                      filter_query=_filter_query(job_filter),
                      turnaround=turnaround,
                      turnaround_svg=plots.turnaround_svg(turnaround, since, until),
                      per_day_svg=plots.jobs_per_day_svg(per_day),
                      failures_svg=plots.failures_by_stage_svg(failures))

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: int, user: Reader) -> HTMLResponse:
        return _job_page(request, job_id, user, patient=None)

    @app.post("/jobs/{job_id}/patient", response_class=HTMLResponse)
    async def job_patient_page(request: Request, job_id: int, user: Reader) -> HTMLResponse:
        """The same page with the patient's name and ID decrypted: a POST, so they never
        sit in a URL, the history or a link."""
        access.check_may_act(user, "see patient names and IDs")
        await access.check_csrf(request, user, secret())
        with app_db() as session:
            _details(session, job_id)
            patient = board.job_patient(session, job_id, DeidKeys.from_secret(secret()))
        return _job_page(request, job_id, user, patient=patient or {})

    def _job_page(request: Request, job_id: int, user: access.PageUser,
                  patient: dict[str, str] | None) -> HTMLResponse:
        with app_db() as session:
            job = _for_user(_details(session, job_id), user)
            pseudonym = board.job_pseudonym(session, job_id)
        return render(request, "job.html", user, job=job, pseudonym=pseudonym, patient=patient,
                      tasks=_tasks(job_id), stages=_stages(job["events"]))

    @app.get("/jobs/{job_id}/confirm/{action}", response_class=HTMLResponse)
    def confirm_page(request: Request, job_id: int, action: str, user: Reader) -> HTMLResponse:
        _check_action(action)
        access.check_may_act(user, f"{action} jobs")
        with app_db() as session:
            job = _details(session, job_id)
        return render(request, "confirm.html", user, job=job, action=action,
                      label=action.capitalize(), question=QUESTIONS[action])

    @app.post("/jobs/{job_id}/{action}", response_class=HTMLResponse)
    async def job_action_page(request: Request, job_id: int, action: str,
                              user: Reader) -> RedirectResponse:
        new_id = await _act(request, job_id, action, user)
        target = new_id if new_id is not None else job_id
        return RedirectResponse(f"{request.scope.get('root_path', '')}/jobs/{target}",
                                status.HTTP_303_SEE_OTHER, headers=NO_STORE)

    @app.get("/series", response_class=HTMLResponse)
    def series_page(request: Request, user: Reader, before: int | None = None) -> HTMLResponse:
        with app_db() as session:
            rows = _for_user([_series_row(s) for s in board.unsent_series(session, before=before)],
                             user)
        return render(request, "series.html", user, series=rows,
                      older_than=rows[-1]["id"] if len(rows) == board.PAGE_SIZE else None)

    @app.get("/series/{series_id}", response_class=HTMLResponse)
    def one_series_page(request: Request, series_id: int, user: Reader) -> HTMLResponse:
        with app_db() as session:
            series = session.get(Series, series_id)
            if series is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no series #{series_id}")
            row = _for_user(_series_row(series), user)
            try:
                templates = load_templates(settings().templates_dir)
                problem = None
            except TemplateError as exc:
                templates, problem = [], f"templates cannot be loaded: {exc}"
            match = board.explain_series(series, templates) if templates else None
        return render(request, "one_series.html", user, series=row, match=match,
                      templates=templates, problem=problem)

    # --- JSON -----------------------------------------------------------------------------

    @app.get("/api/jobs")
    def api_jobs(user: Reader, job_status: str | None = Query(None, alias="status"),
                 template: str | None = None, created_from: str | None = Query(None, alias="from"),
                 created_to: str | None = Query(None, alias="to"), before: int | None = None,
                 after: int | None = None,
                 limit: int = Query(board.PAGE_SIZE, ge=1, le=board.MAX_PAGE_SIZE)
                 ) -> JSONResponse:
        job_filter = _filter(job_status, template, created_from, created_to)
        with app_db() as session:
            page = board.page_of_jobs(session, job_filter, before=before, after=after,
                                      limit=limit)
        return _json({"jobs": _for_user(page.rows, user), "total": page.total, "newer_than": page.newer_than,
                      "older_than": page.older_than})

    @app.get("/api/jobs/{job_id}")
    def api_job(job_id: int, user: Reader) -> JSONResponse:
        with app_db() as session:
            job = _for_user(_details(session, job_id), user)
            job["pseudonym"] = board.job_pseudonym(session, job_id)
        job["tasks"] = [{"dag_id": t.dag_id, "run_id": t.run_id, "task_id": t.task_id,
                         "map_index": t.map_index, "state": t.state, "path": t.path}
                        for t in _tasks(job_id)]
        return _json(job)

    @app.post("/api/jobs/{job_id}/{action}")
    async def api_job_action(request: Request, job_id: int, action: str,
                             user: Reader) -> JSONResponse:
        new_id = await _act(request, job_id, action, user)
        return _json({"job_id": job_id, "action": action, "new_job_id": new_id})

    @app.get("/api/series")
    def api_series(user: Reader, before: int | None = None) -> JSONResponse:
        with app_db() as session:
            rows = [_series_row(s) for s in board.unsent_series(session, before=before)]
        return _json({"series": _for_user(rows, user)})

    async def _act(request: Request, job_id: int, action: str,
                   user: access.PageUser) -> int | None:
        """Run one action as ``dicom-ops jobs <action>`` does; the new job's id on resend."""
        _check_action(action)
        access.check_may_act(user, f"{action} jobs")
        await access.check_csrf(request, user, secret())
        try:
            with app_db() as session:
                if session.get(Job, job_id) is None:
                    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
                job = ACTIONS[action](session, job_id, actor=user.actor)
                new_id = job.id if action == "resend" else None
        except JobError as exc:  # the lifecycle refused: the message names job and status
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return new_id

    return app


def _for_user(value: Any, user: access.PageUser) -> Any:
    """What ``user`` may see of a row: a viewer gets no original UIDs (they identify the
    patient's study as well as a name does), neither as fields nor inside file paths."""
    if user.may_act:
        return value
    if isinstance(value, dict):
        return {key: (None if key in ORIGINAL_UID_FIELDS else
                      redact_identifiers(item) if key in PATH_FIELDS and item else
                      _for_user(item, user))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_for_user(item, user) for item in value]
    return value


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"no action {action!r} (expected one of {', '.join(ACTIONS)})")


def _details(session: Session, job_id: int) -> dict[str, Any]:
    try:
        return job_details(session, job_id)
    except JobError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


def _tasks(job_id: int) -> list:
    """The job's Airflow tasks; the page still works when the metadata DB does not answer."""
    try:
        return task_links(job_id)
    except Exception:  # noqa: BLE001 - a missing link must not hide the job
        return []


def _stages(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(when, what) for each step the job went through, from its audit events."""
    steps = {"created": "created", "started": "started", "packed": "packed",
             "finished": "delivered", "failed": "failed", "cancelled": "cancelled",
             "invalidated": "invalidated"}
    out = []
    for event in events:
        if event["kind"] == "stage":
            out.append((event["at"], event["message"]))
        elif event["kind"] in steps:
            out.append((event["at"], steps[event["kind"]]))
    return out


def _series_row(series: Series) -> dict[str, Any]:
    return {"id": series.id, "state": series.state, "detail": series.state_detail,
            "modality": series.modality, "description": series.description,
            "images": series.instance_count, "source": series.source,
            "first_seen": series.first_seen, "ready_at": series.ready_at,
            "series_uid": series.series_uid}


def _filter(job_status: str | None, template: str | None, created_from: str | None,
            created_to: str | None) -> board.JobFilter:
    try:
        return board.JobFilter(status=job_status or None, template=template or None,
                               created_from=_day(created_from, "from"),
                               created_to=_day(created_to, "to"))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def _day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a date YYYY-MM-DD") from None


def _filter_query(job_filter: board.JobFilter) -> str:
    parts = {"status": job_filter.status, "template": job_filter.template,
             "from": job_filter.created_from, "to": job_filter.created_to}
    return urlencode({k: str(v) for k, v in parts.items() if v is not None})


def _json(payload: Any) -> JSONResponse:
    return JSONResponse(_plain(payload), headers=NO_STORE)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value


def _when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value.replace("T", " ")[:19]
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
