"""The watcher of study_ready and rtstruct_delivered, run as the triggerer runs it."""

from __future__ import annotations

from dicom_ops.airflow.triggers.service_events import ServiceEventTrigger
from dicom_ops.db.models import Job, Transfer, utcnow
from dicom_ops.db.session import session_scope

from tests.unit.airflow.test_series_ready_trigger import Events, add_series, set_state


def test_a_study_is_announced_when_its_last_series_is_no_longer_receiving(db_url):
    add_series(db_url, 1)
    receiving = add_series(db_url, 2, state="receiving")
    with Events(ServiceEventTrigger("study_ready", poll_seconds=0.05, db_url=db_url)) as events:
        assert events.none_within(0.3)

        set_state(db_url, receiving, "ready")

        assert events.next().payload == {"status": "new", "event": "study_ready", "count": 1}
        assert events.none_within(0.3)


def test_a_delivered_rtstruct_is_announced_once(db_url):
    with session_scope(db_url) as session:
        job = Job(template="Thorax OARs", status="processing")
        session.add(job)
        session.flush()
        session.add(Transfer(job_id=job.id, status="completed"))
    with Events(ServiceEventTrigger("rtstruct_delivered", poll_seconds=0.05,
                                    db_url=db_url)) as events:
        assert events.none_within(0.3)
        with session_scope(db_url) as session:
            transfer = session.query(Transfer).one()
            transfer.status, transfer.delivered_at = "delivered", utcnow()

        assert events.next().payload["count"] == 1
        assert events.none_within(0.3)
