"""The one settings object: ``DICOM_OPS_*`` environment variables over defaults.

Every setting is declared once in ``SETTINGS`` (name, default, parser, what is
expected, help). The README's settings table is generated from that list
(``dicom-ops config --markdown``) and a test keeps the two in step.

Long because every setting is declared here and nowhere else: the table is data, one
entry per setting, and splitting it would give settings two homes.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

ENV_PREFIX = "DICOM_OPS_"
REPO_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


# --- parsers: each raises ValueError; the caller adds the variable name -------------


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("empty path")
    return Path(raw).expanduser()


def _optional_path(raw: str) -> Path | None:
    return Path(raw).expanduser() if raw.strip() else None


def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if value < low or (high is not None and value > high):
            raise ValueError(f"{value} out of range")
        return value

    return parse


def _optional_int_range(low: int, high: int) -> Callable[[str], int | None]:
    """An integer in range, or ``None`` for an empty value (e.g. "keep forever")."""
    parse_int = _int_range(low, high)

    def parse(raw: str) -> int | None:
        return parse_int(raw) if raw.strip() else None

    return parse


def _float_range(raw: str, low: float, high: float) -> float:
    value = float(raw.strip())
    if not low <= value <= high:
        raise ValueError(f"{value} out of range")
    return value


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off", ""):
        return False
    raise ValueError(f"{raw!r} is neither true nor false")


def _ae_title(raw: str) -> str:
    value = raw.strip()
    if not 1 <= len(value) <= 16 or not value.isascii() or "\\" in value:
        raise ValueError("not an AE title")
    if any(not ch.isprintable() for ch in value):
        raise ValueError("control characters")
    return value


def _ae_list(raw: str) -> tuple[str, ...]:
    return tuple(_ae_title(part) for part in raw.split(",") if part.strip())


def _path_list(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()).expanduser() for p in raw.split(",") if p.strip())


def _name_list(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ValueError(f"bad name {name!r}")
    return names


_SIZE_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
               "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_size(raw: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", raw)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError("not a size")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _uid_root(raw: str) -> str:
    value = raw.strip().rstrip(".")
    if not re.fullmatch(r"[1-9]\d*(\.(0|[1-9]\d*))*", value) or len(value) > 30:
        raise ValueError("not a UID root")
    return value


def _db_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError("unsupported URL")
    return value


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("unknown level")
    return value


def _text(raw: str) -> str:
    return raw


def _optional_name(raw: str) -> str:
    """One Airflow connection id, or empty (the feature is off)."""
    names = _name_list(raw)
    if len(names) > 1:
        raise ValueError("one connection id, not a list")
    return names[0] if names else ""


def _conn_id(raw: str) -> str:
    if not (name := _optional_name(raw)):
        raise ValueError("empty")
    return name


def _email_list(raw: str) -> tuple[str, ...]:
    addresses = tuple(part.strip() for part in raw.split(",") if part.strip())
    for address in addresses:
        if not re.fullmatch(r"[^@\s,]+@[^@\s,]+", address):
            raise ValueError(f"bad address {address!r}")
    return addresses


# --- the declaration -------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | Callable[[dict[str, Any]], str] | None
    parse: Callable[[str], Any]
    expected: str
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def default_text(self) -> str:
        if self.default is None:
            return "(none)"
        if callable(self.default):
            return self.default.__doc__ or "(derived)"
        return self.default or "(empty)"


def _default_db_url(values: dict[str, Any]) -> str:
    """sqlite:///<data root>/dicom_ops.sqlite"""
    return f"sqlite:///{(values['data_root'] / 'dicom_ops.sqlite').resolve()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("data_root", "./var", _path, "a directory path",
            "Where datastore/, work/, quarantine/ and results/ live."),
    Setting("db_url", _default_db_url, _db_url, "a sqlite:/// or postgresql:// URL",
            "The app DB. Inside Airflow tasks the connection `dicom_ops_db` wins when it exists."),
    Setting("secret_key", None, _text, "a long random string",
            "Installation secret: keys the UID HMAC, pseudonyms, date shifts and the "
            "encryption of subject data. Required to de-identify; `make run` generates "
            "one in var/secret_key.", secret=True),
    Setting("ae_title", "DRAWCLIENT", _ae_title, "1-16 ASCII characters, no backslash",
            "Our AE title (listener and C-STORE client)."),
    Setting("listener_host", "127.0.0.1", _text, "a host name or IP address",
            "Address the DICOM listener binds to."),
    Setting("listener_port", "11112", _int_range(1, 65535), "an integer 1-65535",
            "Port of the DICOM listener."),
    Setting("allowed_aets", "", _ae_list, "comma-separated AE titles",
            "Calling AE titles the listener accepts; empty accepts any (logged as a warning)."),
    Setting("quiet_seconds", "30", _int_range(1, 86400), "an integer 1-86400",
            "A series is finished after this many seconds without a new instance."),
    Setting("max_associations", "32", _int_range(1, 1000), "an integer 1-1000",
            "Concurrent associations the listener accepts."),
    Setting("tls_cert", "", _optional_path, "a PEM file path, or empty",
            "Listener TLS certificate (with DICOM_OPS_TLS_KEY); empty = plain DICOM."),
    Setting("tls_key", "", _optional_path, "a PEM file path, or empty",
            "Listener TLS private key."),
    Setting("min_free_disk", "5GiB", parse_size, "a size such as 5GiB, 500MiB or bytes",
            "Below this much free space under the data root, C-STORE is refused (0xA700)."),
    Setting("watch_folders", "", _path_list, "comma-separated directory paths",
            "Folders written by other programs, watched for finished series."),
    Setting("queue_folders", "", _path_list, "comma-separated directory paths",
            "Input folders of the cached queue (`dicom-ops queue`, DAG draw_queue): "
            "finished series folders already present, registered N at a time."),
    Setting("emulator_port", "8123", _int_range(1, 65535), "an integer 1-65535",
            "Port of the DRAW emulator that `make run` starts (on 127.0.0.1)."),
    Setting("emulator_delay_seconds", "2", lambda raw: _float_range(raw, 0, 3600),
            "a number of seconds 0-3600",
            "How long the emulator that `make run` starts keeps each task pending."),
    Setting("cluster_workers", "2", _int_range(1, 16), "an integer 1-16",
            "Celery workers that `dicom-ops cluster` (make cluster) starts, as worker-1, "
            "worker-2, ... on 127.0.0.1."),
    Setting("cluster_postgres_port", "5433", _int_range(1, 65535), "an integer 1-65535",
            "Port of the PostgreSQL server that `dicom-ops cluster` starts on 127.0.0.1 "
            "(Airflow metadata DB and app DB)."),
    Setting("cluster_redis_port", "6380", _int_range(1, 65535), "an integer 1-65535",
            "Port of the Redis server (Celery broker) that `dicom-ops cluster` starts on "
            "127.0.0.1."),
    Setting("templates_dir", str(REPO_ROOT / "include" / "templates"), _path,
            "a directory path", "Autosegmentation templates (*.yml)."),
    Setting("deid_recipe", str(REPO_ROOT / "include" / "deid" / "deid.dicom"), _path,
            "a file path", "The de-identification recipe (deid format)."),
    Setting("egress_pixel_search", "false", _flag, "true or false",
            "The PHI egress check also searches the image bytes of pixel data for identifiers "
            "(slow; finds names in noise by chance). Off: only pixel data bytes that are not "
            "the image are searched."),
    Setting("uid_root", "2.25", _uid_root, "a UID prefix of digits and dots, up to 30 chars",
            "Root for UIDs we create (new RTSTRUCT SOP Instance UIDs)."),
    Setting("export_interval_minutes", "10", _int_range(1, 1440), "an integer 1-1440",
            "Safety-net schedule of draw_export (it also runs on every ready series)."),
    Setting("import_interval_minutes", "15", _int_range(1, 1440), "an integer 1-1440",
            "Safety-net schedule of draw_import (it also runs when a result is ready)."),
    Setting("cleanup_interval_hours", "24", _int_range(1, 720), "an integer 1-720",
            "Schedule of draw_cleanup."),
    Setting("retention_work_days", "7", _optional_int_range(0, 3650),
            "an integer 0-3650, or empty to keep forever",
            "draw_cleanup removes the work folder of a job (de-identified copies, upload zip) "
            "this many days after the job finished, failed or was cancelled; never while "
            "it is queued, processing or its transfer is with the DRAW server."),
    Setting("retention_uploads_hours", "24", _optional_int_range(0, 87600),
            "an integer 0-87600, or empty to keep forever",
            "draw_cleanup removes a job's upload zip (in its work folder) this many hours "
            "after the job ended, ahead of the rest of the work folder."),
    Setting("retention_quarantine_days", "30", _optional_int_range(0, 3650),
            "an integer 0-3650, or empty to keep forever",
            "draw_cleanup removes quarantined files (with their reason files) this many days "
            "after they were written; a job's quarantine folder only once the job has ended."),
    Setting("retention_receiving_hours", "72", _optional_int_range(0, 87600),
            "an integer 0-87600, or empty to keep forever",
            "draw_cleanup removes the unfinished `.tmp-*` folder of a series nobody has sent "
            "an instance of for this long (never sooner than 1 hour plus "
            "DICOM_OPS_QUIET_SECONDS); the series is then marked `error`."),
    Setting("retention_datastore_days", "", _optional_int_range(0, 36500),
            "an integer 0-36500, or empty to keep forever",
            "Empty: origin series folders in the datastore (and RTSTRUCTs delivered into "
            "them) are never removed. A number: draw_cleanup removes the datastore folder of "
            "a done, ignored or failed series this many days after its last activity."),
    Setting("retention_events_days", "", _optional_int_range(0, 36500),
            "an integer 0-36500, or empty to keep forever",
            "Empty: the audit log (`event` rows) is kept forever. A number: draw_cleanup "
            "deletes events older than this many days (never those of a job still running)."),
    Setting("cleanup_watermark", "20GiB", parse_size, "a size such as 20GiB or 500MiB; 0 is off",
            "When free disk under the data root is below this, draw_cleanup also removes "
            "what is allowed to go ahead of its retention, oldest first, until it is above "
            "(never datastore folders or events). Keep it above DICOM_OPS_MIN_FREE_DISK."),
    Setting("import_deadline_hours", "6", _int_range(1, 720), "an integer 1-720",
            "A transfer not finished on the server after this long fails as timed out."),
    Setting("max_upload_attempts", "3", _int_range(1, 20), "an integer 1-20",
            "Upload attempts per job whose outcome may be unknown (timeout, dropped "
            "connection, crash mid-send) before the job fails; each one is retried "
            "automatically and recorded in upload_attempt."),
    Setting("upload_slots", "2", _int_range(1, 64), "an integer 1-64",
            "Slots of the Airflow pool draw_upload (concurrent uploads)."),
    Setting("destinations", "", _name_list, "comma-separated Airflow connection ids",
            "Nodes that also receive each RTSTRUCT: a `dicom` connection gets it by C-STORE, "
            "a `dicomweb` connection by STOW-RS."),
    Setting("pacs_conn", "", _optional_name, "an Airflow connection id, or empty",
            "The PACS that DAG pacs_query (and `dicom-ops pacs`) queries and retrieves from: a "
            "`dicom` connection (C-FIND, then C-MOVE to our listener; extra `retrieve: get` "
            "for C-GET) or a `dicomweb` one (QIDO-RS, WADO-RS). Empty = no PACS query."),
    Setting("pacs_query_interval_minutes", "30", _int_range(1, 1440), "an integer 1-1440",
            "Schedule of pacs_query."),
    Setting("pacs_modality", "CT", _text, "a DICOM modality code",
            "pacs_query retrieves series of this modality only."),
    Setting("pacs_days_back", "1", _int_range(0, 36500), "an integer 0-36500",
            "pacs_query looks for studies from this many days before the run's day up to it."),
    Setting("pacs_station_include", "", _text, "comma-separated words, or empty",
            "Only series whose station name contains one of these (case-insensitive)."),
    Setting("pacs_station_exclude", "", _text, "comma-separated words, or empty",
            "No series whose station name contains one of these (case-insensitive)."),
    Setting("pacs_study_description_include", "", _text, "comma-separated words, or empty",
            "Only studies whose description contains one of these (case-insensitive)."),
    Setting("pacs_study_description_exclude", "", _text, "comma-separated words, or empty",
            "No study whose description contains one of these (case-insensitive)."),
    Setting("pacs_series_description_include", "", _text, "comma-separated words, or empty",
            "Only series whose description contains one of these (case-insensitive)."),
    Setting("pacs_series_description_exclude", "", _text, "comma-separated words, or empty",
            "No series whose description contains one of these (case-insensitive)."),
    Setting("pacs_max_series", "50", _int_range(1, 10000), "an integer 1-10000",
            "pacs_query retrieves at most this many series per run, oldest studies first."),
    Setting("log_level", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR",
            "Log level of dicom-ops processes. PHI is only ever logged at DEBUG."),
    Setting("notify_webhook_conn", "", _optional_name, "an Airflow connection id, or empty",
            "Webhook for notifications (job failed, job stuck, DRAW server unreachable): an "
            "HTTP connection whose host, port, schema and extra `path` give the URL; "
            "password = bearer token, extra `headers` added. Empty = no webhook."),
    Setting("notify_email_to", "", _email_list, "comma-separated e-mail addresses, or empty",
            "Who gets the same notifications by e-mail (Airflow's SMTP notifier, connection "
            "DICOM_OPS_NOTIFY_SMTP_CONN). Empty = no e-mail."),
    Setting("notify_smtp_conn", "smtp_default", _conn_id, "an Airflow connection id",
            "The SMTP connection for notification e-mails (extra `from_email` is the sender)."),
    Setting("notify_stuck_minutes", "60", _int_range(5, 10080), "an integer 5-10080",
            "A job `processing` with no activity (no stage change, no poll) for this long is "
            "reported as stuck, once. Keep it above the export and import intervals."),
    Setting("notify_draw_unreachable_minutes", "15", _int_range(1, 10080),
            "an integer 1-10080",
            "The DRAW server not answering draw_watchdog's health check for this long is "
            "reported, once per outage (a busy 503 counts as answering)."),
    Setting("services_dir", str(REPO_ROOT / "include" / "services"), _path, "a directory path",
            "Service folders, one per service, each with a dcm-processor.json (or a legacy "
            "settings.json); each becomes the DAG service_<name>."),
    Setting("services_interval_minutes", "10", _int_range(1, 1440), "an integer 1-1440",
            "Safety-net schedule of every service DAG (they also run on each event of "
            "their assets): items an event did not bring (a burst over 100, a missed "
            "event) are taken within this interval."),
    Setting("services_lookback_hours", "24", _int_range(1, 8760), "an integer 1-8760",
            "Services take event items (ready series, quiet studies, delivered RTSTRUCTs) "
            "of at most this many hours ago, each once per service: a service dropped in "
            "also runs on the items of this window."),
    Setting("services_max_active_tasks", "2", _int_range(1, 64), "an integer 1-64",
            "Tasks each service DAG runs at once (its other items wait their turn): a "
            "burst's service jobs must not take the CPU that the burst's export and import "
            "need."),
)


@dataclass(frozen=True)
class Settings:
    data_root: Path
    db_url: str
    secret_key: str | None
    ae_title: str
    listener_host: str
    listener_port: int
    allowed_aets: tuple[str, ...]
    quiet_seconds: int
    max_associations: int
    tls_cert: Path | None
    tls_key: Path | None
    min_free_disk: int
    watch_folders: tuple[Path, ...]
    queue_folders: tuple[Path, ...]
    emulator_port: int
    emulator_delay_seconds: float
    cluster_workers: int
    cluster_postgres_port: int
    cluster_redis_port: int
    templates_dir: Path
    deid_recipe: Path
    egress_pixel_search: bool
    uid_root: str
    export_interval_minutes: int
    import_interval_minutes: int
    cleanup_interval_hours: int
    retention_work_days: int | None
    retention_uploads_hours: int | None
    retention_quarantine_days: int | None
    retention_receiving_hours: int | None
    retention_datastore_days: int | None
    retention_events_days: int | None
    cleanup_watermark: int
    import_deadline_hours: int
    max_upload_attempts: int
    upload_slots: int
    destinations: tuple[str, ...]
    pacs_conn: str
    pacs_query_interval_minutes: int
    pacs_modality: str
    pacs_days_back: int
    pacs_station_include: str
    pacs_station_exclude: str
    pacs_study_description_include: str
    pacs_study_description_exclude: str
    pacs_series_description_include: str
    pacs_series_description_exclude: str
    pacs_max_series: int
    log_level: str
    notify_webhook_conn: str
    notify_email_to: tuple[str, ...]
    notify_smtp_conn: str
    notify_stuck_minutes: int
    notify_draw_unreachable_minutes: int
    services_dir: Path
    services_interval_minutes: int
    services_lookback_hours: int
    services_max_active_tasks: int

    @property
    def datastore_dir(self) -> Path:
        return self.data_root / "datastore"

    @property
    def work_dir(self) -> Path:
        return self.data_root / "work"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_root / "quarantine"

    @property
    def results_dir(self) -> Path:
        return self.data_root / "results"

    def require_secret_key(self) -> bytes:
        """The installation secret, or a clear error when it is missing."""
        if not self.secret_key or len(self.secret_key) < 16:
            raise SettingsError(
                f"{ENV_PREFIX}SECRET_KEY is not set (or shorter than 16 characters): "
                "it is required to de-identify and re-identify. "
                "`make run` keeps one in var/secret_key; set your own in production."
            )
        return self.secret_key.encode()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``); all bad values at once."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    errors: list[str] = []
    for setting in SETTINGS:
        if setting.name in overrides:
            values[setting.name] = overrides[setting.name]
            continue
        raw = env.get(setting.env)
        if raw is None:
            if setting.default is None:
                values[setting.name] = None
                continue
            raw = setting.default(values) if callable(setting.default) else setting.default
        try:
            values[setting.name] = setting.parse(raw)
        except (ValueError, KeyError) as exc:
            shown = "(hidden)" if setting.secret else repr(raw)
            errors.append(f"{setting.env}={shown} is invalid: expected {setting.expected} ({exc})")
    if not errors and bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        errors.append(f"{ENV_PREFIX}TLS_CERT and {ENV_PREFIX}TLS_KEY must be set together")
    errors.extend(_unknown_variables(env))
    if errors:
        raise SettingsError("; ".join(errors))
    return Settings(**values)


def _unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A mistyped variable would otherwise be ignored in silence."""
    known = {setting.env for setting in SETTINGS}
    problems = []
    for name in sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{name} is not a dicom-ops setting{hint}")
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once from the environment."""
    return load_settings()


def settings_markdown() -> str:
    """The README table: every setting with its variable, default and meaning."""
    lines = ["| Variable | Default | Expected | Meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        default = setting.default_text().replace(str(REPO_ROOT), "<repo>")
        lines.append(f"| `{setting.env}` | `{default}` | {setting.expected} | {setting.help} |")
    return "\n".join(lines)


def describe(settings: Settings) -> dict[str, str]:
    """Effective settings for display, with secrets masked."""
    shown: dict[str, str] = {}
    secret_names = {s.name for s in SETTINGS if s.secret}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name in secret_names:
            shown[ENV_PREFIX + f.name.upper()] = "(set)" if value else "(not set)"
        elif isinstance(value, tuple):
            shown[ENV_PREFIX + f.name.upper()] = ",".join(str(v) for v in value)
        else:
            shown[ENV_PREFIX + f.name.upper()] = "" if value is None else str(value)
    return shown
