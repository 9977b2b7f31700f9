"""run_blocking, the one bridge from a trigger's event loop to blocking code."""

from __future__ import annotations

import asyncio
import threading

from dicom_ops.airflow.triggers.blocking import run_blocking


def test_a_blocking_call_leaves_the_event_loop_free_for_other_triggers():
    released = threading.Event()

    async def a_trigger_waiting_while_another_runs() -> bool:
        waiting = asyncio.create_task(run_blocking(released.wait, 10))
        await asyncio.sleep(0)  # the blocking call starts
        released.set()  # only reached if that call did not take the loop with it
        return await waiting

    assert asyncio.run(a_trigger_waiting_while_another_runs()) is True


def test_arguments_results_and_errors_pass_through():
    def divide(numerator: int, *, by: int) -> float:
        return numerator / by

    assert asyncio.run(run_blocking(divide, 6, by=3)) == 2.0
    try:
        asyncio.run(run_blocking(divide, 1, by=0))
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the error did not reach the trigger")
