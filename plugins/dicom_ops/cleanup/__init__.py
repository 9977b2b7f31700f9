"""Cleanup: keep the disk from filling, never touching work in flight.

- ``rules``: items, retentions, and why something must stay (asks the lifecycles);
- ``survey``: what each area holds, and the counts;
- ``remove``: removing one item under its row lock (move aside, re-check, delete);
- ``report``: what a run did, for people and for XCom;
- ``disk``: sizes, ages, free space, the trash folder;
- ``run``: ``run_cleanup``, one run from start to end.
"""
