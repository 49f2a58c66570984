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
