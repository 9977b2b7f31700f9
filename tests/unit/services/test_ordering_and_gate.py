"""Run order (pre, dependsOn, sortPosition, post) and registry callbacks' answers."""

from __future__ import annotations

import pytest
from dicom_ops.services.definition import JobDefinition
from dicom_ops.services.ordering import run_order
from dicom_ops.services.runner import gate


def job(name: str, **fields) -> JobDefinition:
    return JobDefinition.model_validate({"jobName": name, "workerEntry": "w:f", **fields})


def names(jobs) -> list[str]:
    ordered, problems = run_order(jobs)
    assert problems == []
    return [j.job_name for j in ordered]


def test_pre_services_run_first_and_post_services_last_whatever_their_sort_position():
    jobs = [job("cleanup", kind="post", sortPosition=-5), job("main", sortPosition=3),
            job("check-input", kind="pre", sortPosition=99)]

    assert names(jobs) == ["check-input", "main", "cleanup"]


def test_a_dependency_runs_before_its_dependent_even_with_a_higher_sort_position():
    jobs = [job("report", sortPosition=0, dependsOn=["measure"]),
            job("measure", sortPosition=10), job("quick", sortPosition=5)]

    assert names(jobs) == ["quick", "measure", "report"]


def test_equal_sort_positions_keep_the_order_they_are_written_in():
    assert names([job("b"), job("a"), job("c")]) == ["b", "a", "c"]


def test_a_job_depending_on_itself_is_a_problem():
    _, problems = run_order([job("a", dependsOn=["a"])])

    assert problems == ["job 'a': dependsOn: a job cannot depend on itself"]


@pytest.mark.parametrize(("answer", "expected"), [
    (True, (True, {}, "")),
    (None, (True, {}, "")),
    ({"threshold": 3}, (True, {"threshold": 3}, "")),
    ((True, {"x": 1}), (True, {"x": 1}, "")),
    (False, (False, {}, "registry callback m:f returned False")),
    ((False, "modality MR, not CT"), (False, {}, "registry callback m:f: modality MR, not CT")),
])
def test_a_callback_gates_the_job_or_adds_params(answer, expected):
    assert gate(answer, "m:f") == expected


def test_a_callback_answer_of_another_kind_is_an_error_naming_the_callback():
    with pytest.raises(TypeError, match="registry callback m:f returned a str"):
        gate("yes", "m:f")
