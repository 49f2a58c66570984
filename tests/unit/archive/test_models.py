"""Archive run configuration and key layout."""

import pytest
from pydantic import ValidationError

from services.archive.keys import ArchiveKeys
from services.archive.models import RunConfig


def test_defaults_follow_the_spec():
    config = RunConfig(run_id="r")
    assert config.objectives == ["accuracy", "tool_efficiency"]
    assert config.stage1.initial_weights == [0.6, 0.4]
    assert config.adapt_weights


@pytest.mark.parametrize(("data", "needle"), [
    ({"run_id": "bad id"}, "run_id"),
    ({"run_id": "r", "objectives": ["a", "a"]}, "unique"),
    ({"run_id": "r", "objectives": ["a", "b", "c"]}, "stage1.initial_weights has 2 values"),
    ({"run_id": "r", "objectives": ["a"]}, "objectives"),
    ({"run_id": "r", "extra": 1}, "extra"),
])
def test_bad_configs_name_the_field(data, needle):
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate(data)
    assert needle in str(info.value)


def test_keys_are_prefixed_per_run_and_namespace():
    keys = ArchiveKeys("ns")
    assert keys.nstar("run1") == "ns:run:run1:nstar"
    assert keys.state("run1") != keys.state("run2")
    assert keys.runs == "ns:runs"


@pytest.mark.parametrize("outcome", [
    [1e200, 1e200], [float("inf"), 0.5], [float("nan"), 0.5], [1.5, 0.5], [-0.1, 0.5],
])
def test_reported_outcomes_are_in_the_unit_interval(outcome):
    from services.archive.models import OutcomeReport

    with pytest.raises(ValidationError) as info:
        OutcomeReport(step=0, outcome=outcome)
    assert "outcome" in str(info.value)
    assert OutcomeReport(step=0, outcome=[0.0, 1.0]).outcome == [0.0, 1.0]


@pytest.mark.parametrize(("stage1", "field"), [
    ({"tau": float("inf")}, "stage1.tau"),
    ({"amplification": 1e309}, "stage1.amplification"),
    ({"reference_point": [-1e300, 0.0]}, "stage1.reference_point"),
])
def test_run_configs_refuse_non_finite_and_out_of_range_floats(stage1, field):
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate({"run_id": "r", "stage1": stage1})
    assert field in str(info.value)


def test_states_and_records_with_non_finite_numbers_do_not_validate():
    """What an older archive stored after an outcome of 1e200 (an infinite hypervolume) is
    recognised as unreadable instead of being served as JSON no client can parse."""
    from services.archive.models import OutcomeRecord, RunState

    with pytest.raises(ValidationError):
        RunState(weights=[0.6, 0.4], gain=float("inf"), rho=1.0, stage=1, last_step=0,
                 hypervolume=float("inf"), front=[])
    with pytest.raises(ValidationError):
        OutcomeRecord(step=0, outcome=[1e200, 1e200], delta_hv=float("inf"), gain=0.0, rho=0.0,
                      weights=[0.6, 0.4], hypervolume=float("inf"), added=True, stage=1)


def test_objective_names_are_unique_and_not_blank_in_the_schema_too():
    schema = RunConfig.model_json_schema()["properties"]["objectives"]
    assert schema["uniqueItems"] is True and schema["items"]["pattern"] == r"\S"
    with pytest.raises(ValidationError):
        RunConfig.model_validate({"run_id": "r", "objectives": ["   ", "b"]})
