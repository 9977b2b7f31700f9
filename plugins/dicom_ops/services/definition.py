"""Service definitions: a service folder's ``dcm-processor.json`` (or dcm-processor's
legacy ``settings.json``) read into one checked ``ServiceDefinition``.

Every problem is reported at once, each naming the file, the job and the key, e.g.
``archive-forward/dcm-processor.json: job 'forward' (jobs[0]): dependsOn: unknown job
'pack'``. Ordering (``dependsOn``, pre/post, ``sortPosition``) and the entry points'
modules are checked here too (``ordering``, ``entrypoints``), so a definition that loads
is one that can run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFINITION_FILE = "dcm-processor.json"
LEGACY_FILE = "settings.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENTRY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:"
                           r"[A-Za-z_][A-Za-z0-9_]*$")
# dcm-processor's named priorities, as Airflow priority weights.
NAMED_PRIORITIES = {"low": 1, "medium": 5, "normal": 5, "high": 10}


class ServiceEvent(StrEnum):
    """What starts a job: the same strings as the assets and ``service_item.event``."""

    SERIES_READY = "series_ready"
    STUDY_READY = "study_ready"
    RTSTRUCT_DELIVERED = "rtstruct_delivered"


class JobKind(StrEnum):
    PRE = "pre"
    NORMAL = "normal"
    POST = "post"


class ServiceDefinitionError(ValueError):
    """A definition that cannot run; ``problems`` lists each, naming file, job and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class JobDefinition(BaseModel):
    """One job, in dcm-processor.json's own key names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    job_name: str = Field(alias="jobName")
    worker_entry: str = Field(alias="workerEntry")
    registry_entry: str | None = Field(default=None, alias="registryEntry")
    events: tuple[ServiceEvent, ...] = (ServiceEvent.SERIES_READY,)
    depends_on: tuple[str, ...] = Field(default=(), alias="dependsOn")
    sort_position: int = Field(default=0, alias="sortPosition")
    priority: int = Field(default=1, ge=1, le=1000)
    timeout: int | None = Field(default=None, ge=1, le=86400, description="seconds")
    params: dict[str, Any] = Field(default_factory=dict)
    disabled: bool = False
    kind: JobKind = JobKind.NORMAL

    @field_validator("job_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("expected 1-64 letters, digits, '-' or '_', starting with a "
                             "letter or digit")
        return value

    @field_validator("worker_entry", "registry_entry")
    @classmethod
    def _entry(cls, value: str | None) -> str | None:
        if value is not None and not ENTRY_PATTERN.match(value):
            raise ValueError("expected 'module:function' (the module inside the service "
                             "folder)")
        return value

    @field_validator("events", "depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("events")
    @classmethod
    def _some_event(cls, value: tuple[ServiceEvent, ...]) -> tuple[ServiceEvent, ...]:
        if not value:
            raise ValueError("expected at least one event")
        return value


@dataclass(frozen=True)
class ServiceDefinition:
    """A loaded, checked service: its jobs in run order (pre, normal, post)."""

    name: str
    folder: Path
    file: Path
    jobs: tuple[JobDefinition, ...]  # every job, disabled ones included, in run order
    legacy: bool = False
    notes: tuple[str, ...] = field(default=())  # accepted but without effect (legacy keys)

    @property
    def dag_id(self) -> str:
        return f"service_{self.name}"

    @property
    def enabled_jobs(self) -> tuple[JobDefinition, ...]:
        return tuple(job for job in self.jobs if not job.disabled)

    @property
    def events(self) -> tuple[ServiceEvent, ...]:
        """The events any enabled job starts on, in ServiceEvent order."""
        wanted = {event for job in self.enabled_jobs for event in job.events}
        return tuple(event for event in ServiceEvent if event in wanted)

    def jobs_for(self, event: ServiceEvent | str) -> tuple[JobDefinition, ...]:
        return tuple(job for job in self.enabled_jobs if ServiceEvent(event) in job.events)

    def job(self, name: str) -> JobDefinition:
        for job in self.jobs:
            if job.job_name == name:
                return job
        raise KeyError(f"service {self.name!r} has no job {name!r}")


def definition_file(folder: Path) -> Path | None:
    """The definition of a service folder: dcm-processor.json, else settings.json."""
    for name in (DEFINITION_FILE, LEGACY_FILE):
        if (folder / name).is_file():
            return folder / name
    return None


def load_service(folder: Path | str) -> ServiceDefinition:
    """The checked definition of the service in ``folder``; raises ServiceDefinitionError."""
    # Imported here: both modules import this one's models.
    from dicom_ops.services.entrypoints import check_entry_points
    from dicom_ops.services.ordering import run_order

    folder = Path(folder)
    name = folder.name
    shown = f"{name}/"
    if not NAME_PATTERN.match(name):
        raise ServiceDefinitionError([f"{shown}: the folder name is the service name: expected "
                                      "1-64 letters, digits, '-' or '_'"])
    path = definition_file(folder)
    if path is None:
        raise ServiceDefinitionError([f"{shown}: no {DEFINITION_FILE} (nor a legacy "
                                      f"{LEGACY_FILE})"])
    where = f"{name}/{path.name}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ServiceDefinitionError([f"{where}: invalid JSON at line {exc.lineno} column "
                                      f"{exc.colno}: {exc.msg}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceDefinitionError([f"{where}: cannot be read ({type(exc).__name__})"]) from None
    legacy = path.name == LEGACY_FILE
    entries, problems = _job_entries(raw, where)
    jobs: list[JobDefinition] = []
    notes: list[str] = []
    for index, entry in enumerate(entries):
        label = _job_label(entry, index)
        if legacy:
            entry, entry_notes = _from_legacy(entry, f"{where}: {label}", problems)
            notes.extend(entry_notes)
        try:
            jobs.append(JobDefinition.model_validate(entry))
        except ValidationError as exc:
            problems.extend(f"{where}: {label}: {_key(error['loc'])}: {error['msg']}"
                            for error in exc.errors())
    names = [job.job_name for job in jobs]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{where}: job {duplicate!r}: jobName: more than one job has this name")
    ordered: list[JobDefinition] = []
    if not problems:
        ordered, order_problems = run_order(jobs)
        problems.extend(f"{where}: {problem}" for problem in order_problems)
        problems.extend(f"{where}: {problem}" for problem in check_entry_points(folder, jobs))
    if problems:
        raise ServiceDefinitionError(problems)
    return ServiceDefinition(name=name, folder=folder, file=path, jobs=tuple(ordered),
                             legacy=legacy, notes=tuple(notes))


def _job_entries(raw: Any, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    if isinstance(raw, dict) and "jobs" in raw:
        raw = raw["jobs"]
    elif isinstance(raw, dict) and "jobName" in raw:
        raw = [raw]  # one job, written as an object
    if not isinstance(raw, list) or not raw:
        return [], [f"{where}: expected a non-empty list of job definitions "
                    "(or an object with a 'jobs' list)"]
    problems = [f"{where}: jobs[{i}]: expected an object with jobName, workerEntry, ..."
                for i, entry in enumerate(raw) if not isinstance(entry, dict)]
    return [entry for entry in raw if isinstance(entry, dict)], problems


def _job_label(entry: dict[str, Any], index: int) -> str:
    name = entry.get("jobName")
    return f"job {name!r} (jobs[{index}])" if isinstance(name, str) else f"jobs[{index}]"


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) if loc else "(the job)"


_LEGACY_KEYS = {"jobName": "jobName", "worker": "workerEntry", "callback": "registryEntry",
                "dependsOn": "dependsOn", "priority": "priority", "timeout": "timeout",
                "params": "params", "sortPosition": "sortPosition", "disabled": "disabled"}


def _from_legacy(entry: dict[str, Any], label: str, problems: list[str]
                 ) -> tuple[dict[str, Any], list[str]]:
    """dcm-processor's settings.json keys as ours: worker/callback entries may be written
    ``module.function``; priorities by name; every legacy job starts on series_ready."""
    converted: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in entry.items():
        if key == "channel":
            notes.append(f"{label}: channel {value!r} has no effect here (Airflow pools and "
                         "priority weights order the work)")
            continue
        if key not in _LEGACY_KEYS:
            problems.append(f"{label}: {key}: unknown key of a legacy settings.json (expected "
                            f"one of {', '.join([*_LEGACY_KEYS, 'channel'])})")
            continue
        if key in ("worker", "callback") and isinstance(value, str) and ":" not in value:
            module, _, function = value.rpartition(".")
            value = f"{module}:{function}" if module else value
        if key == "priority" and isinstance(value, str):
            value = NAMED_PRIORITIES.get(value.lower(), value)
        if key == "callback" and value in ("", None):
            continue
        converted[_LEGACY_KEYS[key]] = value
    converted.setdefault("events", ["series_ready"])
    return converted, notes
