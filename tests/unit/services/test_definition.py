"""Loading service definitions: every bad input names the file, the job and the key."""

from __future__ import annotations

import json

import pytest
from dicom_ops.services import ServiceDefinitionError, ServiceEvent, installed_services
from dicom_ops.services.definition import JobKind, load_service

from tests.support.services import EXAMPLES, write_service


def problems_of(folder) -> list[str]:
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(folder)
    return caught.value.problems


def test_invalid_json_names_the_file_and_the_line(tmp_path):
    folder = write_service(tmp_path, "broken", '[\n  {"jobName": "a",}\n]')

    assert problems_of(folder) == [
        "broken/dcm-processor.json: invalid JSON at line 2 column 19: Expecting property name "
        "enclosed in double quotes"]


def test_a_missing_module_and_a_missing_function_name_the_job_and_the_key(tmp_path):
    folder = write_service(tmp_path, "svc", [
        {"jobName": "one", "workerEntry": "nowhere:work"},
        {"jobName": "two", "workerEntry": "worker:work", "registryEntry": "worker:absent"},
    ])

    assert problems_of(folder) == [
        "svc/dcm-processor.json: job 'one': workerEntry: module 'nowhere' is not in the "
        "service folder (expected nowhere.py)",
        "svc/dcm-processor.json: job 'two': registryEntry: module 'worker' has no function "
        "'absent'",
    ]


def test_a_module_that_fails_to_import_says_why(tmp_path):
    folder = write_service(tmp_path, "svc", [{"jobName": "one", "workerEntry": "worker:work"}],
                           {"worker": "import not_a_module_anywhere\n"})

    (problem,) = problems_of(folder)
    assert problem.startswith("svc/dcm-processor.json: job 'one': workerEntry: module 'worker' "
                              "cannot be imported (ModuleNotFoundError")


def test_unknown_and_cyclic_dependencies_are_reported_not_dropped(tmp_path):
    unknown = write_service(tmp_path, "unknown", [
        {"jobName": "a", "workerEntry": "worker:work", "dependsOn": ["ghost"]}])
    cyclic = write_service(tmp_path, "cyclic", [
        {"jobName": "a", "workerEntry": "worker:work", "dependsOn": ["c"]},
        {"jobName": "b", "workerEntry": "worker:work", "dependsOn": ["a"]},
        {"jobName": "c", "workerEntry": "worker:work", "dependsOn": ["b"]},
    ])

    assert problems_of(unknown) == [
        "unknown/dcm-processor.json: job 'a': dependsOn: unknown job 'ghost' (jobs: a)"]
    assert problems_of(cyclic) == [
        "cyclic/dcm-processor.json: job 'a': dependsOn: a cycle: a -> c -> b -> a"]


def test_a_bad_event_name_and_a_bad_key_are_named_with_their_job(tmp_path):
    folder = write_service(tmp_path, "svc", [
        {"jobName": "a", "workerEntry": "worker:work", "events": ["series_done"]},
        {"jobName": "b", "workerEntry": "worker:work", "timeout": "soon", "colour": "red"},
    ])

    problems = problems_of(folder)

    assert problems[0].startswith("svc/dcm-processor.json: job 'a' (jobs[0]): events.0: Input "
                                  "should be 'series_ready', 'study_ready' or "
                                  "'rtstruct_delivered'")
    assert any(p.startswith("svc/dcm-processor.json: job 'b' (jobs[1]): timeout:")
               for p in problems)
    assert any(p.startswith("svc/dcm-processor.json: job 'b' (jobs[1]): colour: Extra inputs")
               for p in problems)


def test_a_dependency_that_never_runs_first_is_reported(tmp_path):
    folder = write_service(tmp_path, "svc", [
        {"jobName": "early", "workerEntry": "worker:work", "kind": "pre", "dependsOn": ["main"]},
        {"jobName": "main", "workerEntry": "worker:work"},
        {"jobName": "off", "workerEntry": "worker:work", "disabled": True},
        {"jobName": "needs-off", "workerEntry": "worker:work", "dependsOn": ["off"]},
        {"jobName": "on-study", "workerEntry": "worker:work", "events": ["study_ready"],
         "dependsOn": ["main"]},
    ])

    assert problems_of(folder) == [
        "svc/dcm-processor.json: job 'early': dependsOn: job 'main' is a normal job, which "
        "runs after pre jobs",
        "svc/dcm-processor.json: job 'needs-off': dependsOn: job 'off' is disabled, so this "
        "job would never run",
        "svc/dcm-processor.json: job 'on-study': dependsOn: job 'main' does not start on "
        "study_ready, so this job would never run on it",
    ]


def test_duplicate_job_names_and_a_missing_definition(tmp_path):
    folder = write_service(tmp_path, "svc", [
        {"jobName": "a", "workerEntry": "worker:work"},
        {"jobName": "a", "workerEntry": "worker:work"}])
    empty = tmp_path / "empty"
    empty.mkdir()

    assert problems_of(folder) == [
        "svc/dcm-processor.json: job 'a': jobName: more than one job has this name"]
    assert problems_of(empty) == ["empty/: no dcm-processor.json (nor a legacy settings.json)"]


def test_legacy_settings_json_is_read_with_dcm_processors_keys(tmp_path):
    folder = write_service(tmp_path, "legacy", json.dumps([
        {"jobName": "seg", "worker": "worker.work", "callback": "worker.only_ct",
         "priority": "high", "timeout": 60, "sortPosition": 2, "channel": "gpu",
         "params": {"x": 1}},
        {"jobName": "post", "worker": "worker.work", "dependsOn": "seg"},
    ]), file="settings.json")

    definition = load_service(folder)

    assert definition.legacy
    seg, post = definition.jobs
    assert (seg.worker_entry, seg.registry_entry, seg.priority, seg.timeout) == (
        "worker:work", "worker:only_ct", 10, 60)
    assert seg.events == (ServiceEvent.SERIES_READY,) and post.depends_on == ("seg",)
    assert definition.notes == ("legacy/settings.json: job 'seg' (jobs[0]): channel 'gpu' has "
                                "no effect here (Airflow pools and priority weights order the "
                                "work)",)


def test_the_shipped_examples_load_and_archive_forward_is_disabled():
    services = {s.name: s for s in installed_services(EXAMPLES)}

    assert set(services) == {"series-report", "archive-forward"}
    report = services["series-report"].definition
    assert report.events == (ServiceEvent.SERIES_READY,)
    assert report.jobs[0].registry_entry == "report:only_ct"
    forward = services["archive-forward"].definition
    assert forward.jobs[0].disabled and forward.events == ()
    assert forward.jobs[0].kind is JobKind.NORMAL


def test_one_broken_service_does_not_hide_the_others(tmp_path):
    write_service(tmp_path, "good", [{"jobName": "a", "workerEntry": "worker:work"}])
    write_service(tmp_path, "bad", "{")

    services = {s.name: s for s in installed_services(tmp_path)}

    assert services["good"].definition is not None and services["good"].problems == ()
    assert services["bad"].definition is None
    assert services["bad"].problems[0].startswith("bad/dcm-processor.json: invalid JSON")


def test_a_module_that_exits_on_import_is_a_problem_not_the_end_of_the_parse(tmp_path):
    folder = write_service(tmp_path, "svc", [{"jobName": "one", "workerEntry": "worker:work"}],
                           {"worker": "raise SystemExit(3)\n"})

    (problem,) = problems_of(folder)
    assert problem == ("svc/dcm-processor.json: job 'one': workerEntry: module 'worker' cannot "
                       "be imported (SystemExit: 3)")
