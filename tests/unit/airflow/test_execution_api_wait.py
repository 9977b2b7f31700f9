"""No task starts before the Execution API answers: the executors wait for the API
server's health route while it starts (connection refused, then an error status), go on
as soon as it answers, and after their patience name the URL instead of hanging."""

from __future__ import annotations

import logging
import threading

import pytest
from dicom_ops.airflow.executors import execution_api
from dicom_ops.airflow.executors.execution_api import wait_for_execution_api

from tests.support import execution_api as stand_in

late_execution_api, live_execution_api = (stand_in.late_execution_api,
                                          stand_in.live_execution_api)


@pytest.fixture
def messages():
    # a handler of our own: Airflow's logging set-up bypasses caplog
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger(execution_api.__name__)
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lambda: [(r.levelname, r.getMessage()) for r in records]
    logger.removeHandler(handler)
    logger.setLevel(previous)


def _waiting(**kwargs) -> tuple[threading.Thread, list[bool]]:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(
        wait_for_execution_api(poll=0.05, **kwargs)), daemon=True)
    thread.start()
    return thread, result


def test_the_wait_lasts_until_the_api_server_listens_and_answers(late_execution_api,
                                                                 messages):
    # given an API server not yet listening (its URL from Airflow's configuration)
    thread, result = _waiting()
    # then nobody is let through while nothing listens
    thread.join(timeout=0.5)
    assert thread.is_alive() and result == []
    # when it listens but is not healthy yet, still not
    late_execution_api.status = 503
    late_execution_api.listen()
    thread.join(timeout=0.5)
    assert thread.is_alive() and late_execution_api.health_checks >= 1
    # and once it answers, the wait ends
    late_execution_api.status = 200
    thread.join(timeout=10)
    assert result == [True]
    logged = messages()
    assert logged[0][0] == "INFO" and logged[0][1].startswith(
        f"Waiting for the Execution API at {late_execution_api.url} before starting tasks")
    assert logged[-1][0] == "INFO" and "answers after" in logged[-1][1]


def test_an_api_that_answers_already_costs_no_wait_and_no_log_line(live_execution_api,
                                                                   messages):
    assert wait_for_execution_api() is True
    assert live_execution_api.health_checks == 1
    assert messages() == []


def test_a_wrong_url_is_named_after_the_patience_and_tasks_start(late_execution_api,
                                                                 messages):
    # nothing ever listens there: a wrong AIRFLOW__CORE__EXECUTION_API_SERVER_URL
    thread, result = _waiting(patience=0.4, remind=0.1)
    thread.join(timeout=10)
    assert result == [False]
    levels_and_texts = messages()
    assert any(level == "WARNING" and text.startswith("Still waiting for the Execution API")
               for level, text in levels_and_texts)
    level, text = levels_and_texts[-1]
    assert level == "WARNING"
    assert late_execution_api.url in text and "AIRFLOW__CORE__EXECUTION_API_SERVER_URL" in text
    assert "ConnectionRefusedError" in text
