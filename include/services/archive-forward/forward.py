"""archive-forward: once an RTSTRUCT has been delivered, C-STORE the CT it was drawn on
and the RTSTRUCT to an archive.

``params.destination`` names the archive's Airflow connection (a ``dicom`` connection:
host, port, called AE title in the schema). Disabled by default: set ``"disabled":
false`` in dcm-processor.json once the connection exists.
"""

from __future__ import annotations

from dicom_ops.delivery.cstore import send_files


def forward_to_archive(ctx):
    conn_id = ctx.params.get("destination")
    if not conn_id:
        raise ValueError("params.destination (the archive's connection id) is not set")
    node = ctx.dicom_node(conn_id)
    files = ctx.series_files()
    if ctx.rtstruct is not None:
        files.append(ctx.rtstruct)
    report = send_files(files, node, ctx.ae_title)
    ctx.log.info("forwarded %d file(s) to %s", len(report.stored), node)
    return {"destination": conn_id, "stored": len(report.stored), "attempts": report.attempts}
