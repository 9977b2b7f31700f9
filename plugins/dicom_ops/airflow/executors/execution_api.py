"""No task starts before Airflow's Execution API answers.

A task process's first act is to tell the Execution API (served by the API server) that
it runs, and to fetch its context; if that fails, the task fails without having run a
line of ours. `make run` and `make cluster` start every Airflow part at once, and on a
first start of a loaded machine the scheduler (and a Celery worker) is ready seconds
before the API server, which loads the UI and the plugins first: in CI the scheduler
started tasks at 10 s and the API server answered at 20 s. Those tasks' start calls
were retried while it came up, and one got a 400 on the retry and failed, a red square
in a fresh install's UI.

So the executor's side waits for the API to answer before any task can reach it: the
embedded stack's executor before it forks its workers (``preloading``), each Celery
worker before its pool takes messages (``celery_config``). Nothing is lost by waiting:
without the API no task can run at all. The wait is bounded, so that a wrong
``AIRFLOW__CORE__EXECUTION_API_SERVER_URL`` is named in the log rather than hanging the
scheduler; after it, tasks start and fail as Airflow's would.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request

from airflow.executors.base_executor import get_execution_api_server_url

log = logging.getLogger(__name__)

# Well over the API server's slowest start seen here (~20 s on two loaded cores); short
# enough that a wrong URL is named within minutes.
PATIENCE_SECONDS = 300.0
POLL_SECONDS = 0.5
REMIND_SECONDS = 30.0


def why_execution_api_not_ready(url: str, timeout: float = 5.0) -> str | None:
    """``None`` when ``<url>health`` answers 200, else why not (for the log)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"{type(reason).__name__}: {reason}"


def wait_for_execution_api(url: str | None = None, *, patience: float = PATIENCE_SECONDS,
                           poll: float = POLL_SECONDS, remind: float = REMIND_SECONDS) -> bool:
    """Return once the Execution API at ``url`` (Airflow's configured one) answers: True;
    or, after ``patience`` seconds without an answer, False. Never raises."""
    url = url or get_execution_api_server_url()
    started = time.monotonic()
    why = why_execution_api_not_ready(url)
    if why is None:
        return True
    log.info("Waiting for the Execution API at %s before starting tasks (%s)", url, why)
    last_reminder = started
    while True:
        now = time.monotonic()
        if now - started >= patience:
            log.warning("The Execution API at %s did not answer within %.0f s (%s); starting "
                        "tasks anyway, which fail until it answers: check the API server and "
                        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", url, patience, why)
            return False
        if now - last_reminder >= remind:
            log.warning("Still waiting for the Execution API at %s (%s); no task starts "
                        "before it answers", url, why)
            last_reminder = now
        time.sleep(poll)
        why = why_execution_api_not_ready(url)
        if why is None:
            log.info("The Execution API at %s answers after %.1f s; starting tasks", url,
                     time.monotonic() - started)
            return True
