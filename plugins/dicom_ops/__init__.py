"""DICOM autosegmentation pipelines on Apache Airflow: the domain package.

Packages follow the path a series takes: ``intake`` (in) -> ``templates`` and ``jobs``
(what to do) -> ``deid`` (out, de-identified) -> ``draw`` (the server) -> ``delivery``
(back, re-identified) -> ``cleanup``; ``pipeline`` composes them into the pipelines'
steps. The domain core never imports Airflow: the thin adapters live in
``dicom_ops.airflow``. ``devtools`` (emulator, synthetic CT) is imported by nothing in
the runtime path. ``.importlinter`` at the repository root checks all of this.
"""

__version__ = "0.1.0"
