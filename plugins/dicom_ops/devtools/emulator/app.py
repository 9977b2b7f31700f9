"""The emulator's HTTP API: the DRAW endpoints, plus ``/admin/`` for tests to switch faults.

Everything but ``/api/health/`` and ``/api/token/refresh/`` needs a bearer
access token. ``/admin/`` needs the configured token (``--token``) and is never
subject to faults. Error bodies are ``{"detail": "..."}``, as FastAPI's are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Body, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from dicom_ops.devtools.emulator.auth import TokenAuthority
from dicom_ops.devtools.emulator.connection import DropAfterUpload
from dicom_ops.devtools.emulator.faults import FaultError, Faults
from dicom_ops.devtools.emulator.processing import Processor
from dicom_ops.devtools.emulator.store import (
    COMPLETED,
    DELIVERED,
    FAILED,
    PENDING,
    TRANSFERRED,
    Task,
    TaskStore,
    valid_task_id,
)
from dicom_ops.devtools.emulator.uploads import (
    UploadRejected,
    check_checksum,
    save_stream,
    unpack_upload,
)
from dicom_ops.files import keep_secret

log = logging.getLogger("dicom_ops.devtools.emulator")

CHECKSUM_HEADER = "X-File-Checksum"
DEFAULT_MAX_UNPACKED_BYTES = 2 * 2**30

# What this emulator says it runs; any model id in a template is accepted.
MODELS: list[dict[str, Any]] = [
    {
        "model_id": 1,
        "model_name": "Thorax_Emulated",
        "model_config": "3d_fullres",
        "model_trainer_name": "nnUNetTrainer",
        "model_postprocess": "none",
        "modelmap": [
            {"mapid": 1, "map_tg263_primary_name": "External"},
            {"mapid": 2, "map_tg263_primary_name": "Lung_L"},
            {"mapid": 3, "map_tg263_primary_name": "Lung_R"},
        ],
    },
    {
        "model_id": 2,
        "model_name": "Body_Emulated",
        "model_config": "2d",
        "model_trainer_name": "nnUNetTrainer",
        "model_postprocess": "none",
        "modelmap": [{"mapid": 1, "map_tg263_primary_name": "External"}],
    },
]


@dataclass(frozen=True)
class EmulatorConfig:
    data_dir: Path
    access_token: str
    refresh_token: str
    delay: float = 2.0
    jitter: float = 0.0
    token_lifetime: float = 3600.0
    keep_uploads: bool = False
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    faults: dict[str, Any] = field(default_factory=dict)


def resolve_tokens(data_dir: Path, access_token: str | None, refresh_token: str | None
                   ) -> tuple[str, str]:
    """The given tokens, or ones kept in ``<data-dir>/access_token`` / ``refresh_token``."""
    return (access_token or keep_secret(data_dir / "access_token"),
            refresh_token or keep_secret(data_dir / "refresh_token"))


def create_app(config: EmulatorConfig) -> FastAPI:
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    incoming = data_dir / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)  # half-received uploads of a previous run
    incoming.mkdir()
    uploads_dir = data_dir / "uploads"
    faults = Faults()
    faults.update(config.faults)
    authority = TokenAuthority(
        config.access_token, config.refresh_token,
        keep_secret(data_dir / "signing_key").encode(), config.token_lifetime, faults)
    store = TaskStore(data_dir)
    processor = Processor(store, faults)
    jitter = random.Random()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        processor.start()
        yield
        processor.stop()

    app = FastAPI(title="DRAW server emulator (dicom-ops)", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.faults, app.state.store, app.state.processor = faults, store, processor

    @app.middleware("http")
    async def every_kth_request_fails(request: Request, call_next):
        if request.url.path.startswith("/api/") and faults.next_request_fails():
            return JSONResponse({"detail": "internal server error (emulated: error_every)"},
                                status_code=500)
        if request.url.path.startswith("/api/") and faults.take("error_next"):
            return JSONResponse({"detail": "internal server error (emulated: error_next)"},
                                status_code=500)
        return await call_next(request)

    # Outermost (added last), so it sees uvicorn's own receive and can close its connection.
    app.add_middleware(DropAfterUpload, faults=faults)

    def require_access(request: Request) -> None:
        token = _bearer(request)
        if not authority.check_access(token):
            detail = ("authentication credentials were not provided" if token is None
                      else "access token is invalid or expired")
            raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})

    def require_admin(request: Request) -> None:
        if not authority.is_admin(_bearer(request)):
            raise HTTPException(401, "admin endpoints need the configured token",
                                headers={"WWW-Authenticate": "Bearer"})

    def refuse_when_busy() -> None:
        busy = faults.busy_for()
        if busy > 0:
            raise HTTPException(503, "server busy, try again later",
                                headers={"Retry-After": str(max(1, round(busy)))})

    def known_task(task_id: str) -> Task:
        task = store.get(task_id) if valid_task_id(task_id) else None
        if task is None:
            raise HTTPException(404, "task not found")
        return task

    # --- DRAW API ----------------------------------------------------------------------

    @app.get("/api/health/")
    def health() -> dict:
        refuse_when_busy()
        return {"status": "ok"}

    @app.get("/api/models/")
    def models(request: Request) -> list[dict]:
        require_access(request)
        return MODELS

    @app.post("/api/upload/")
    def upload(
        request: Request,
        file: Annotated[UploadFile | None, File()] = None,
        checksum: Annotated[str | None, Form()] = None,
        client_id: Annotated[str | None, Form()] = None,
    ) -> dict:
        require_access(request)
        refuse_when_busy()
        if file is None:
            raise HTTPException(400, "form field 'file' (the zip) is missing")
        if faults.take("reject_next"):
            raise HTTPException(400, "upload refused (emulated: reject_next)")
        staging = incoming / uuid.uuid4().hex
        staging.mkdir()
        try:
            task_id = uuid.uuid4().hex
            zip_path = staging / "upload.zip"
            actual = save_stream(file.file, zip_path, config.max_unpacked_bytes)
            check_checksum(actual, checksum)
            unpacked = unpack_upload(zip_path, staging / "input",
                                     max_unpacked_bytes=config.max_unpacked_bytes)
            if faults.take("vanish_next"):
                log.info("task %s: accepted, then forgotten (fault vanish_next)", task_id)
                return _upload_answer(task_id, faults)
            if config.keep_uploads:
                uploads_dir.mkdir(exist_ok=True)
                os.replace(zip_path, uploads_dir / f"{task_id}.zip")
            store.folder(task_id).mkdir(parents=True)
            os.replace(staging / "input", store.input_dir(task_id))
            now = time.time()
            task = Task(
                task_id=task_id,
                client_id=(client_id or "")[:64],
                status=PENDING,
                created_at=now,
                start_at=now + config.delay + jitter.uniform(0.0, config.jitter),
                image_count=len(unpacked.dicom_files),
                fail_reason=("emulated failure (fault fail_next)"
                             if faults.take("fail_next") else None),
            )
            store.save(task, create=True)
        except UploadRejected as exc:
            log.info("upload rejected (400)")
            log.debug("upload rejected: %s", exc)
            raise HTTPException(400, str(exc)) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("task %s: received %d DICOM file(s), %.1f MiB unpacked, %d structure(s)",
                 task_id, task.image_count, unpacked.unpacked_bytes / 2**20,
                 len(unpacked.template.structure_names()))
        return _upload_answer(task_id, faults)

    @app.get("/api/upload/{task_id}/status/")
    def status(task_id: str, request: Request) -> dict:
        require_access(request)
        task = known_task(task_id)
        answer = {"task_id": task.task_id, "status": task.status}
        if task.status == FAILED:
            answer["error"] = task.error
        return answer

    @app.get("/api/rtstruct/{task_id}/")
    def rtstruct(task_id: str, request: Request) -> Response:
        require_access(request)
        task = known_task(task_id)
        if task.status == FAILED:
            raise HTTPException(409, f"task FAILED: {task.error}")
        if task.status not in (COMPLETED, DELIVERED, TRANSFERRED):
            raise HTTPException(409, f"RTSTRUCT not ready (status {task.status})")
        if task.files_deleted:
            raise HTTPException(404, "RTSTRUCT was deleted after the client confirmed it")
        try:
            body = store.result_path(task_id).read_bytes()
        except FileNotFoundError:
            raise HTTPException(404, "RTSTRUCT not found") from None
        checksum = task.rtstruct_sha256 or hashlib.sha256(body).hexdigest()
        if faults.take("wrong_checksum"):
            checksum = hashlib.sha256(b"emulated wrong checksum " + body).hexdigest()
        if task.status == COMPLETED:
            task.status = DELIVERED
            store.save(task)
        log.info("task %s: RTSTRUCT sent (%d bytes)", task_id, len(body))
        return Response(body, media_type="application/dicom", headers={
            CHECKSUM_HEADER: checksum,
            "Content-Disposition": f'attachment; filename="RS.{task_id}.dcm"',
        })

    @app.post("/api/rtstruct/{task_id}/confirm/")
    def confirm(task_id: str, request: Request,
                payload: Annotated[dict | None, Body()] = None) -> dict:
        require_access(request)
        task = known_task(task_id)
        if payload and payload.get("task_id") not in (None, task_id):
            raise HTTPException(400, "task_id in the body does not match the URL")
        if task.status not in (COMPLETED, DELIVERED, TRANSFERRED):
            raise HTTPException(409, f"nothing to confirm (status {task.status})")
        if task.status != TRANSFERRED:
            task.status = TRANSFERRED
            task.confirmed_at = time.time()
            if not config.keep_uploads:
                store.delete_files(task_id)
                task.files_deleted = True
            store.save(task)
            log.info("task %s: confirmed by the client%s", task_id,
                     "" if config.keep_uploads else ", server copy deleted")
        return {"task_id": task_id, "status": task.status, "message": "receipt confirmed"}

    @app.post("/api/token/refresh/")
    async def refresh(request: Request) -> dict:
        fields = _request_fields(await request.body(), request.headers.get("content-type", ""))
        token = fields.get("refresh_token") or fields.get("refresh")
        if not token:
            raise HTTPException(400, "refresh_token is missing")
        if not authority.check_refresh(str(token)):
            raise HTTPException(401, "refresh token is invalid")
        return {"access_token": authority.issue(), "refresh_token": config.refresh_token,
                "token_type": "Bearer", "expires_in": int(config.token_lifetime)}

    # --- admin (tests and demos) --------------------------------------------------------

    @app.get("/admin/faults")
    def get_faults(request: Request) -> dict:
        require_admin(request)
        return faults.snapshot()

    @app.post("/admin/faults")
    def set_faults(request: Request, changes: Annotated[dict, Body()]) -> dict:
        require_admin(request)
        try:
            current = faults.update(changes)
        except FaultError as exc:
            raise HTTPException(400, str(exc)) from None
        log.info("faults now: %s", current or "none")
        return current

    @app.delete("/admin/faults")
    def clear_faults(request: Request) -> dict:
        require_admin(request)
        log.info("faults cleared")
        return faults.clear()

    @app.get("/admin/tasks")
    def list_tasks(request: Request) -> list[dict]:
        require_admin(request)
        return [{"task_id": t.task_id, "status": t.status, "error": t.error}
                for t in sorted(store.all(), key=lambda t: t.created_at)]

    @app.delete("/admin/tasks/{task_id}")
    def forget_task(task_id: str, request: Request) -> dict:
        require_admin(request)
        if not (valid_task_id(task_id) and store.forget(task_id)):
            raise HTTPException(404, "task not found")
        log.info("task %s: forgotten (admin)", task_id)
        return {"task_id": task_id, "forgotten": True}

    return app


def _upload_answer(task_id: str, faults: Faults) -> dict:
    if faults.legacy_upload():
        return {"transaction_token": task_id}
    return {"task_id": task_id, "status": PENDING}


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _request_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """JSON or form fields of a small request body."""
    if not body:
        return {}
    if "application/x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    try:
        parsed = json.loads(body)
    except ValueError:
        raise HTTPException(400, "body must be JSON or a URL-encoded form") from None
    if not isinstance(parsed, dict):
        raise HTTPException(400, "body must be a JSON object")
    return parsed
