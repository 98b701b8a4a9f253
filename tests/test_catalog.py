"""The catalog: every name a config gives is checked against its registry when the config is
loaded, each problem one line naming the key; scenarios bring their companions and expand their
group shorthand; a name registered both as a method and as a search is refused."""

from __future__ import annotations

import pytest

from pulse_unlearn.errors import PulseError
from pulse_unlearn.protocol.catalog import load_config, units
from pulse_unlearn.records import Unit


def test_units_follow_the_scenarios_order_and_bring_companions():
    cfg = load_config(None, ["scenario=[sequential,pretrained]", "method=[npo,ga]"])
    assert units(cfg) == [Unit("finetuned", "npo", "llm"), Unit("finetuned", "ga", "llm"),
                          Unit("pretrained", "npo", "llm"), Unit("pretrained", "ga", "llm"),
                          Unit("sequential", "npo", "llm"), Unit("sequential", "ga", "llm")]


def test_a_group_name_stands_for_its_scenarios():
    cfg = load_config(None, ["scenario=[concepts,finetuned]", "model.events=2"])
    assert cfg.grid[0].scenarios == ["concepts-person", "concepts-event", "concepts-both", "finetuned"]


@pytest.mark.parametrize("overrides, message", [
    (["scenario=nope"], "config: grid.0.scenarios: unknown scenario 'nope'; choose from finetuned, pretrained, "),
    (["method=nope"], "config: grid.0.methods: unknown method 'nope'; choose from "),
    (["trajectory.splits=[forget,nope]"], "config: trajectory.splits: unknown split 'nope'; choose from forget, "),
    (["attacks=[{name: consistency, scenarios: [nope]}]"], "config: attacks.0.scenarios: unknown scenario 'nope'"),
    (["attacks=[{name: consistency, splits: [nope]}]"], "config: attacks.0.splits: "),
    (["scenario=sequential", "splits.forget=10", "splits.requests=3"],
     "config: splits.requests: splits.forget=10 does not split into splits.requests=3 equal requests"),
    (["scenario=concepts"], "config: model.events: the concepts scenarios need people and events"),
])
def test_bad_names_and_sizes_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(PulseError) as e:
        load_config(None, overrides)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_name_registered_as_a_method_and_a_search_is_refused(monkeypatch):
    from pulse_unlearn.blackbox import SEARCHES
    from pulse_unlearn.methods import METHODS

    monkeypatch.setattr(SEARCHES, "_items", {**SEARCHES._items, "ga": METHODS["ga"]})
    with pytest.raises(PulseError, match="ga: registered both as a method and as a black-box search"):
        load_config(None, ["method=ga"])
