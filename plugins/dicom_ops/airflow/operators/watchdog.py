"""The watchdog's one task: check the DRAW server, then tell what a person must know."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.hooks.draw import DrawHook
from dicom_ops.airflow.notifiers import notice_link, notifiers
from dicom_ops.db.session import session_scope
from dicom_ops.draw.errors import DrawBusy, DrawError
from dicom_ops.pipeline.errors import redact_identifiers
from dicom_ops.pipeline.watchdog import due_notices, record_draw_contact


class WatchdogOperator(BaseOperator):
    """Records whether the DRAW server answers its health check (a busy 503 answers), then
    sends every due notice (failed, stuck, unreachable) on every channel that is on.
    Returns counts. Fails, after trying all, when a notice could not be sent: the next
    run sends it again."""

    ui_color = "#fbe9e7"

    def __init__(self, *, draw_conn_id: str = DrawHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.draw_conn_id = draw_conn_id

    def execute(self, context: Context) -> dict[str, int]:
        settings = task_settings()
        reachable, detail = self._check_draw()
        with session_scope(settings.db_url) as session:
            record_draw_contact(session, reachable=reachable, detail=detail, actor=self.dag_id)
        channels = notifiers(settings)
        if not channels:
            self.log.info("notifications are off (no webhook, no e-mail recipients)")
        sent, failures = 0, []
        for channel in channels:
            with session_scope(settings.db_url) as session:
                due = due_notices(
                    session, channel.channel,
                    stuck_after=timedelta(minutes=settings.notify_stuck_minutes),
                    unreachable_after=timedelta(minutes=settings.notify_draw_unreachable_minutes))
            for notice in due:
                try:
                    channel.announce(notice, context, link=notice_link(notice, context))
                    sent += 1
                except Exception as exc:  # one bad channel must not silence the others
                    failures.append(f"{notice.subject} via {channel.channel}: "
                                    f"{type(exc).__name__}: {redact_identifiers(str(exc))}")
        if failures:
            raise AirflowException("could not notify: " + "; ".join(failures))
        return {"draw_reachable": int(reachable), "sent": sent}

    def _check_draw(self) -> tuple[bool, str]:
        try:
            with DrawHook(self.draw_conn_id) as client:
                client.health()
        except DrawBusy:
            return True, ""
        except DrawError as exc:
            self.log.warning("DRAW server check failed: %s", exc)
            return False, f"{type(exc).__name__}: {exc}"
        return True, ""
