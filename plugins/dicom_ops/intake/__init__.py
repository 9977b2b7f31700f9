"""Intake: series arrive (listener, watch folders, cached queue) and become ready.

A series is written into a ``.tmp`` round folder, tracked while it arrives, and
registered ready in the app DB when it is finished (the one rule lives in
``intake.finished``). Bad files go to the quarantine with a reason. Intake knows
nothing of jobs, de-identification or delivery.
"""
