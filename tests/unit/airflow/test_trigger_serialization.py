"""Every trigger survives the trip through the Airflow DB: the triggerer re-creates it
from ``serialize()`` alone (import the class path, call it with the kwargs)."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import dicom_ops.airflow.triggers as triggers_package
import pytest
from airflow.triggers.base import BaseTrigger
from dicom_ops.airflow.assets import DRAW_RESULTS, RTSTRUCT_DELIVERED, SERIES_READY, STUDY_READY
from dicom_ops.airflow.triggers.draw import DrawHealthTrigger, DrawResultsTrigger
from dicom_ops.airflow.triggers.series_ready import SeriesReadyTrigger
from dicom_ops.airflow.triggers.service_events import ServiceEventTrigger

# One trigger per class, with arguments other than the defaults, so a kwarg that
# serialize() forgets shows up as a difference.
EXAMPLES: dict[type[BaseTrigger], BaseTrigger] = {
    DrawHealthTrigger: DrawHealthTrigger("draw_other", poll_seconds=12.5, timeout_seconds=60),
    DrawResultsTrigger: DrawResultsTrigger("draw_other", poll_seconds=3.0),
    SeriesReadyTrigger: SeriesReadyTrigger(poll_seconds=0.5, db_url="sqlite:///x.sqlite"),
    ServiceEventTrigger: ServiceEventTrigger("study_ready", poll_seconds=0.5,
                                             db_url="sqlite:///x.sqlite"),
}
WATCHED = [watcher.trigger for asset in (SERIES_READY, DRAW_RESULTS, STUDY_READY,
                                                     RTSTRUCT_DELIVERED)
           for watcher in asset.watchers]


def _our_trigger_classes() -> set[type]:
    found = set()
    for module_info in pkgutil.iter_modules(triggers_package.__path__):
        module = importlib.import_module(f"{triggers_package.__name__}.{module_info.name}")
        found |= {cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if issubclass(cls, BaseTrigger) and cls.__module__ == module.__name__}
    return found


def _recreated(trigger: BaseTrigger) -> BaseTrigger:
    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


def test_every_trigger_we_ship_has_a_round_trip_example():
    assert _our_trigger_classes() == set(EXAMPLES)


@pytest.mark.parametrize("trigger", [*EXAMPLES.values(), *WATCHED],
                         ids=lambda trigger: type(trigger).__name__)
def test_a_trigger_re_created_from_its_serialized_form_serializes_the_same(trigger):
    classpath, kwargs = trigger.serialize()

    recreated = _recreated(trigger)

    assert type(recreated) is type(trigger)
    assert classpath == f"{type(trigger).__module__}.{type(trigger).__qualname__}"
    assert recreated.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain values only: no objects, no secrets
