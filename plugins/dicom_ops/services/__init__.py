"""Services: site-provided processing on event items, as dcm-processor defines it.

A service folder under ``DICOM_OPS_SERVICES_DIR`` declares jobs (``definition``); each
becomes a DAG ``service_<name>`` (``dags/services.py``). Its items (ready series, quiet
studies, delivered RTSTRUCTs) are found and claimed in the app DB (``events``), each job
runs for each item in ``ordering``'s order (``runner``) with a ``WorkerContext``
(``context``), and its outcome is recorded (``runs``). No Airflow here.
"""

from dicom_ops.services.catalog import InstalledService, find_service, installed_services
from dicom_ops.services.definition import (
    JobDefinition,
    JobKind,
    ServiceDefinition,
    ServiceDefinitionError,
    ServiceEvent,
    load_service,
)

__all__ = [
    "InstalledService",
    "JobDefinition",
    "JobKind",
    "ServiceDefinition",
    "ServiceDefinitionError",
    "ServiceEvent",
    "find_service",
    "installed_services",
    "load_service",
]
