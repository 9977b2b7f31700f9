"""PACS query/retrieve (OpenREM-style): echo, C-FIND study then series (or QIDO-RS),
filter, skip what is known, C-MOVE to our listener (or C-GET, or WADO-RS), and record
every query. Retrieved series enter intake with source ``pacs``."""
