"""Delivery: a returned RTSTRUCT is validated against the job's own UIDs, re-identified
(fail closed), written into the folder its CT came from, and C-STOREd to the
configured destinations. A rejected RTSTRUCT goes to the quarantine, never delivered.
"""
