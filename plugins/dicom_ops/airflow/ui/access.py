"""Who may see and do what on the jobs page, decided by Airflow's own auth manager.

A plugin's FastAPI app is not protected by Airflow: every route of ours depends on
``reader`` (or ``actor``), which take the user from Airflow's API auth dependency
(``get_user``: the ``Authorization: Bearer`` token, else the UI's ``_token`` cookie) and
ask the configured auth manager:

- no token: 401; a token for no valid user: 403 (Airflow's own answers);
- reading (the pages, ``GET /api/...``): the user may read the DAG ``draw_export``;
- acting (resend, cancel, invalidate) and seeing the patient's name and ID: the user may
  trigger ``draw_export`` (a DAG-run POST; in the simple auth manager the ``user`` role and
  above). A viewer sees pseudonyms only.

Actions are CSRF-safe: a browser sends the ``_token`` cookie along with any form another
site makes it post, so a cookie-authenticated POST must also carry ``csrf_token`` (form
field or ``X-CSRF-Token`` header), an HMAC of the user's name under the installation
secret that only our own pages show. A request with a bearer token is not at risk (a
browser never adds that header by itself) and needs none.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import (
    DagAccessEntity,
    DagDetails,
)
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, Request, status

from dicom_ops.airflow.notifiers import EXPORT_DAG_ID

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class PageUser:
    """The Airflow user behind a request, and what they may do here."""

    name: str
    may_act: bool  # trigger DAGs: resend/cancel/invalidate, see names and IDs

    @property
    def actor(self) -> str:
        """How the audit log names them (the CLI is ``cli``, the pipelines ``pipeline``)."""
        return f"ui:{self.name}"[:64]


def csrf_token(user_name: str, secret: bytes) -> str:
    return hmac.new(secret, b"dicom-ops-jobs-page:" + user_name.encode(), hashlib.sha256).hexdigest()


def page_user(user: BaseUser) -> PageUser:
    manager = get_auth_manager()
    details = DagDetails(id=EXPORT_DAG_ID)
    if not manager.is_authorized_dag(method="GET", details=details, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"user {user.get_name()!r} may not read the DAG {EXPORT_DAG_ID}")
    may_act = manager.is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                        details=details, user=user)
    return PageUser(name=user.get_name(), may_act=may_act)


def reader(user: GetUserDep) -> PageUser:
    return page_user(user)


Reader = Annotated[PageUser, Depends(reader)]


def check_may_act(user: PageUser, what: str) -> None:
    if not user.may_act:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"user {user.name!r} may not {what}: it needs permission to "
                            f"trigger the DAG {EXPORT_DAG_ID}")


async def check_csrf(request: Request, user: PageUser, secret: bytes) -> None:
    """Refuse a cookie-authenticated POST without our token (see the module docstring)."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_token(user.name, secret)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "missing or wrong CSRF token: reload the page and try again")
