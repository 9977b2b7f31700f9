"""App DB tables (``dicom_ops``): series, jobs, transfers, maps and the audit log.

States and statuses are plain strings checked by the DB; the rules for moving
between them live in one place each: ``dicom_ops.intake.series_lifecycle``,
``dicom_ops.jobs.lifecycle`` and ``dicom_ops.draw.transfer_lifecycle`` (each with a
``StrEnum`` of exactly the strings below; a unit test keeps the two equal).

Long because it is the one declarative schema of the app DB: every table (the data
path's, the services', the PACS queries', the data-root identity) is declared here,
next to the constraints the Alembic revisions mirror, so a reader and the migration
tests compare one file against ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SERIES_STATES = ("receiving", "ready", "claimed", "done", "ignored", "error")
SERIES_SOURCES = ("scp", "watcher", "queue", "pacs")
JOB_STATUSES = ("in_queue", "processing", "finished", "failed", "cancelled", "invalidated")
TRANSFER_STATUSES = (
    "pending",  # packed; no upload attempt, or the last one provably did not reach the server
    "uploading",  # an upload attempt is in flight; its outcome is not known yet
    "sent",  # the server returned a task id
    "processing",  # the server reports work in progress
    "completed",  # the server has the RTSTRUCT ready
    "delivered",  # re-identified and written / C-STOREd
    "confirmed",  # server told we received it
    "failed",
)
# What became of one upload attempt (``upload_attempt.outcome``).
UPLOAD_OUTCOMES = (
    "unknown",  # sent (or being sent) and never answered: the server may hold a copy
    "accepted",  # the server answered with a task id
    "refused",  # provably not received: an HTTP error answer, or no connection at all
)
# What became of an accepted attempt's task on the server (``upload_attempt.server_copy``);
# NULL while the server still holds it (or it is the job's own result, still in progress).
SERVER_COPY_FATES = (
    "confirmed",  # the server was told "received" and deletes its copy
    "failed",  # the server failed the task: nothing to fetch or confirm
    "gone",  # the server no longer knows the task (404)
    "abandoned",  # not finished by the import deadline; no longer polled
)
UID_KINDS = ("study", "series", "sop", "frame_of_reference", "other")
INTAKE_FOLDER_STATES = ("registered", "empty")
# Services (``dicom_ops.services``): what starts a service job, and how its run ended.
SERVICE_EVENTS = ("series_ready", "study_ready", "rtstruct_delivered")
SERVICE_RUN_STATUSES = ("running", "succeeded", "failed", "skipped")
# pacs: a series fetched by C-GET or WADO-RS into a folder of its own, then registered.
INTAKE_FOLDER_SOURCES = ("watcher", "queue", "pacs")
PACS_QUERY_STATUSES = ("running", "done", "failed")
# One series asked of the PACS (``pacs_request.state``); moved by ``dicom_ops.pacs.records``.
PACS_REQUEST_STATES = (
    "planned",  # chosen by the query step; the retrieve step has not asked for it yet
    "requested",  # C-MOVE/C-GET/WADO-RS under way
    "received",  # every instance arrived
    "partial",  # some instances failed: the next run asks for the series again
    "failed",  # the PACS refused the whole request: the next run asks again
)

UID_LENGTH = 64


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Series(Base):
    """One DICOM series as received; ``folder`` is where its files are now."""

    __tablename__ = "series"
    __table_args__ = (
        CheckConstraint(_in("state", SERIES_STATES), name="state"),
        CheckConstraint(_in("source", SERIES_SOURCES), name="source"),
        Index("ix_series_state_ready_at", "state", "ready_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(UID_LENGTH), index=True)
    series_uid: Mapped[str] = mapped_column(String(UID_LENGTH), unique=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(256))
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    folder: Mapped[str] = mapped_column(Text)
    origin_folder: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    calling_aet: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="receiving")
    # Why the state is what it is: "no template", "conflict: template A, template B", errors.
    state_detail: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IntakeFolder(Base):
    """A folder written by another program (watcher or cached queue) or by a PACS
    retrieve (C-GET, WADO-RS), registered once.

    ``empty`` means it held no usable DICOM; it is recorded so it is never looked at again.
    """

    __tablename__ = "intake_folder"
    __table_args__ = (
        CheckConstraint(_in("state", INTAKE_FOLDER_STATES), name="state"),
        CheckConstraint(_in("source", INTAKE_FOLDER_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    source: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    series_count: Mapped[int] = mapped_column(Integer, default=0)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    non_dicom_count: Mapped[int] = mapped_column(Integer, default=0)
    unusable_count: Mapped[int] = mapped_column(Integer, default=0)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """One request to segment one or more series with one template."""

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        Index("ix_job_claim_order", "status", "priority", "id"),
        # The jobs page's filters and plots (migration 0003).
        Index("ix_job_status_id", "status", "id"),
        Index("ix_job_template_id", "template", "id"),
        Index("ix_job_created_at", "created_at"),
        Index("ix_job_finished_at", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template: Mapped[str] = mapped_column(String(256))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="in_queue")
    stage: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    resend_of: Mapped[int | None] = mapped_column(ForeignKey("job.id"))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Series ready -> RTSTRUCT delivered, in seconds.
    turnaround_seconds: Mapped[float | None] = mapped_column(Float)

    series_links: Mapped[list[JobSeries]] = relationship(
        back_populates="job", order_by="JobSeries.position", cascade="all, delete-orphan"
    )
    transfer: Mapped[Transfer | None] = relationship(back_populates="job", uselist=False)


class JobSeries(Base):
    """A job's series in their given order, each with its image range (NULLs = auto)."""

    __tablename__ = "job_series"
    __table_args__ = (UniqueConstraint("job_id", "position", name="position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    range_start: Mapped[int | None] = mapped_column(Integer)
    range_end: Mapped[int | None] = mapped_column(Integer)
    range_delta: Mapped[int | None] = mapped_column(Integer)

    job: Mapped[Job] = relationship(back_populates="series_links")
    series: Mapped[Series] = relationship()


class Transfer(Base):
    """The job's exchange with the DRAW server."""

    __tablename__ = "transfer"
    __table_args__ = (
        CheckConstraint(_in("status", TRANSFER_STATUSES), name="status"),
        Index("ix_transfer_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), unique=True)
    server_task_id: Mapped[str | None] = mapped_column(String(256), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    server_status: Mapped[str | None] = mapped_column(String(128))
    zip_sha256: Mapped[str | None] = mapped_column(String(64))
    rtstruct_sha256: Mapped[str | None] = mapped_column(String(64))
    upload_attempts: Mapped[int] = mapped_column(Integer, default=0)
    poll_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_path: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="transfer")


class UploadAttempt(Base):
    """One attempt to upload a job's zip, recorded before the zip is sent.

    The transfer row says where the job's exchange stands; these rows remember every
    attempt, so an attempt whose answer was lost still counts against
    ``DICOM_OPS_MAX_UPLOAD_ATTEMPTS``, and a task the server did answer for is
    polled and confirmed even when another attempt's result was delivered.
    """

    __tablename__ = "upload_attempt"
    __table_args__ = (
        UniqueConstraint("job_id", "number", name="job_number"),
        CheckConstraint(_in("outcome", UPLOAD_OUTCOMES), name="outcome"),
        CheckConstraint(f"server_copy IS NULL OR {_in('server_copy', SERVER_COPY_FATES)}",
                        name="server_copy"),
        # The import's poll asks for accepted attempts not settled yet (server_copy NULL)
        # on every run; nearly every attempt ever made is settled (migration 0003).
        Index("ix_upload_attempt_unsettled", "server_copy", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per job
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16), default="unknown")
    # Why: "timed out", "connection dropped", "answered 500". Endpoints and codes only.
    detail: Mapped[str | None] = mapped_column(Text)
    server_task_id: Mapped[str | None] = mapped_column(String(256), index=True)
    server_copy: Mapped[str | None] = mapped_column(String(16))
    server_copy_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UidMap(Base):
    """De-identified UID -> original UID, per job: re-identification trusts nothing else."""

    __tablename__ = "uid_map"
    __table_args__ = (
        UniqueConstraint("job_id", "deid_uid", name="job_deid"),
        CheckConstraint(_in("kind", UID_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    deid_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    original_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    kind: Mapped[str] = mapped_column(String(24))


class SubjectMap(Base):
    """Pseudonym -> original demographics, Fernet-encrypted at rest (never plaintext here)."""

    __tablename__ = "subject_map"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), unique=True)
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    date_offset_days: Mapped[int] = mapped_column(Integer)
    encrypted: Mapped[bytes] = mapped_column(LargeBinary)


class Event(Base):
    """Append-only audit log: who did what to which job or series, and when. No PHI."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")


class ServiceItem(Base):
    """One event item (a ready series, a quiet study, a delivered RTSTRUCT) taken by one
    service: claimed once per service and ``stamp`` (a series sent again is a new item).

    ``item_key`` is the series id, the job id, or the Study Instance UID; only the row id
    ever leaves the app DB (XCom, task labels, logs)."""

    __tablename__ = "service_item"
    __table_args__ = (
        CheckConstraint(_in("event", SERVICE_EVENTS), name="event"),
        UniqueConstraint("service", "event", "item_key", "stamp", name="service_item_once"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(128), index=True)
    event: Mapped[str] = mapped_column(String(32))
    item_key: Mapped[str] = mapped_column(String(UID_LENGTH))
    stamp: Mapped[datetime] = mapped_column(UTCDateTime)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    runs: Mapped[list[ServiceRun]] = relationship(back_populates="item",
                                                  cascade="all, delete-orphan")


class ServiceRun(Base):
    """One job of a service run for one item: its outcome, the reason of a skip or
    failure (no patient values), and the small dict the worker returned (JSON)."""

    __tablename__ = "service_run"
    __table_args__ = (
        CheckConstraint(_in("status", SERVICE_RUN_STATUSES), name="status"),
        UniqueConstraint("item_id", "job_name", name="service_run_once"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("service_item.id", ondelete="CASCADE"),
                                         index=True)
    job_name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="running")
    reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    item: Mapped[ServiceItem] = relationship(back_populates="runs")


# Services look for recent items by time ("ready or delivered in the last N hours"):
# without these the question would scan every series and transfer ever recorded.
Index("ix_series_ready_at", Series.ready_at)
Index("ix_transfer_delivered_at", Transfer.delivered_at)


class PacsQuery(Base):
    """One run of the PACS query (``pacs_query`` DAG or ``dicom-ops pacs query``): what
    was found, why series were skipped, and what came back."""

    __tablename__ = "pacs_query"
    __table_args__ = (CheckConstraint(_in("status", PACS_QUERY_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pacs: Mapped[str] = mapped_column(String(256))  # the connection id
    filters: Mapped[str] = mapped_column(Text)  # JSON of the filters used
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    studies_found: Mapped[int] = mapped_column(Integer, default=0)
    series_found: Mapped[int] = mapped_column(Integer, default=0)
    filtered: Mapped[int] = mapped_column(Integer, default=0)
    known: Mapped[int] = mapped_column(Integer, default=0)
    over_limit: Mapped[int] = mapped_column(Integer, default=0)
    unusable: Mapped[int] = mapped_column(Integer, default=0)  # no Series Instance UID
    requested: Mapped[int] = mapped_column(Integer, default=0)
    received_instances: Mapped[int] = mapped_column(Integer, default=0)
    failed_instances: Mapped[int] = mapped_column(Integer, default=0)
    failed_series: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class PacsRequest(Base):
    """One series asked of the PACS by one query run, and how much of it arrived."""

    __tablename__ = "pacs_request"
    __table_args__ = (
        CheckConstraint(_in("state", PACS_REQUEST_STATES), name="state"),
        Index("ix_pacs_request_series_uid", "series_uid", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("pacs_query.id", ondelete="CASCADE"),
                                          index=True)
    study_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    series_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    state: Mapped[str] = mapped_column(String(16), default="planned")
    expected_instances: Mapped[int | None] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    warning: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text)  # why it is partial or failed
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DataRootIdentity(Base):
    """The one data root this app DB belongs to: its id is also in the marker file
    ``<data root>/.dicom-ops-data-root`` (written by ``dicom-ops db upgrade``), so a host
    that mounted another folder there is refused at start (``dicom_ops.data_root``)."""

    __tablename__ = "data_root_identity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marker_id: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)  # as the host that wrote it saw it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
