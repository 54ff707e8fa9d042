"""The `detectors:` config section: defaults, durations, one-line errors, per-agent overrides."""

from __future__ import annotations

from typing import Any

import pytest

from detectors import AgentSettings, DetectorConfig, DetectorConfigError, parse_duration


def error_of(section: dict[str, Any]) -> str:
    with pytest.raises(DetectorConfigError) as caught:
        DetectorConfig.from_dict(section)
    message = str(caught.value)
    assert "\n" not in message  # one line
    return message


# -- defaults ----------------------------------------------------------------------------


@pytest.mark.parametrize("section", [None, {}])
def test_an_empty_section_is_every_default(section: dict[str, Any] | None) -> None:
    config = DetectorConfig.from_dict(section)

    assert config.defaults == AgentSettings()
    zombie = config.defaults.zombie_run
    assert zombie.enabled is True
    assert zombie.min_idle == 120.0
    assert zombie.idle is None
    assert (zombie.idle_multiplier, zombie.idle_quantile) == (4.0, 0.99)
    assert zombie.min_gap_samples == 20
    assert zombie.critical_after == 6.0
    assert zombie.forget_after == 48 * 3600.0
    runaway = config.defaults.runaway_loop
    assert runaway.enabled is True
    assert (runaway.max_repeats, runaway.max_cycle_repeats) == (3, 3)
    assert (runaway.max_steps, runaway.max_tokens) == (500, 2_000_000)
    assert runaway.quiet == 600.0


def test_an_agent_without_overrides_gets_the_defaults() -> None:
    config = DetectorConfig.from_dict({"zombie_run": {"min_idle": "5m"}})

    assert config.for_agent("any-agent") is config.defaults
    assert config.for_agent("").zombie_run.min_idle == 300.0


def test_settings_are_read_only() -> None:
    config = DetectorConfig.from_dict(None)

    with pytest.raises(ValueError, match="frozen"):
        config.defaults.zombie_run.min_idle = 1.0


# -- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("6h", 21_600.0),
        ("1d", 86_400.0),
        ("1.5m", 90.0),
        (" 10 s ", 10.0),
        (45, 45.0),
        (2.5, 2.5),
    ],
)
def test_durations_are_read_in_seconds(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    config = DetectorConfig.from_dict({"zombie_run": {"min_idle": text}})
    assert config.defaults.zombie_run.min_idle == seconds


def test_every_duration_setting_takes_duration_text() -> None:
    config = DetectorConfig.from_dict(
        {"zombie_run": {"idle": "90s", "forget_after": "1d"}, "runaway_loop": {"quiet": "2m"}}
    )

    assert config.defaults.zombie_run.idle == 90.0
    assert config.defaults.zombie_run.forget_after == 86_400.0
    assert config.defaults.runaway_loop.quiet == 120.0


@pytest.mark.parametrize("bad", ["5 minutes", "soon", "-5s", "0s", 0, -3, True, "5x", ""])
def test_a_bad_duration_is_a_one_line_error_naming_the_setting(bad: Any) -> None:
    message = error_of({"zombie_run": {"min_idle": bad}})

    assert message.startswith("detectors.zombie_run.min_idle: ")


def test_a_bad_duration_error_says_what_is_expected() -> None:
    assert "is not a duration such as '30s'" in error_of({"runaway_loop": {"quiet": "later"}})
    assert "must be positive" in error_of({"runaway_loop": {"quiet": "0s"}})


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ({"zombie_run": {"idle_multiplier": 0.5}}, "detectors.zombie_run.idle_multiplier"),
        ({"zombie_run": {"idle_quantile": 0}}, "detectors.zombie_run.idle_quantile"),
        ({"zombie_run": {"min_gap_samples": "many"}}, "detectors.zombie_run.min_gap_samples"),
        ({"runaway_loop": {"max_repeats": 1}}, "detectors.runaway_loop.max_repeats"),
        ({"runaway_loop": {"enabled": "perhaps"}}, "detectors.runaway_loop.enabled"),
        ({"zombie_run": 5}, "detectors.zombie_run"),
        ({"tool_failure_spike": {"windows": []}}, "detectors.tool_failure_spike.windows"),
        (
            {"tool_failure_spike": {"windows": [{"long": "1h", "short": "5m", "burn_rate": 1}]}},
            "detectors.tool_failure_spike.windows.0.burn_rate",
        ),
        (
            {"tool_failure_spike": {"failure_attributes": [{"key": "x"}]}},
            "detectors.tool_failure_spike.failure_attributes.0.equals",
        ),
        ({"quality_drift": {"behaviour_auc": 0.4}}, "detectors.quality_drift.behaviour_auc"),
        ({"change_point": {"confirm_calls": 1}}, "detectors.change_point.confirm_calls"),
    ],
)
def test_a_bad_value_is_a_one_line_error_naming_the_setting(
    section: dict[str, Any], where: str
) -> None:
    assert error_of(section).startswith(f"{where}: ")


# -- unknown keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ({"zombie_run": {"min_idel": "5m"}}, "detectors.zombie_run.min_idel"),
        ({"zombie": {}}, "detectors.zombie"),
        ({"runaway_loop": {"max_repeat": 4}}, "detectors.runaway_loop.max_repeat"),
    ],
)
def test_an_unknown_key_is_named(section: dict[str, Any], where: str) -> None:
    assert error_of(section) == f"{where}: unknown key"


# -- per-agent overrides -----------------------------------------------------------------


def test_overrides_change_only_the_overridden_fields_of_that_agent() -> None:
    config = DetectorConfig.from_dict(
        {
            "zombie_run": {"min_idle": "2m", "critical_after": 3},
            "runaway_loop": {"max_steps": 50},
            "overrides": {"batch-agent": {"zombie_run": {"idle": "1h"}}},
        }
    )

    batch = config.for_agent("batch-agent")
    assert batch.zombie_run.idle == 3600.0
    # Everything else is the section's own settings, not the built-in defaults.
    assert batch.zombie_run.min_idle == 120.0
    assert batch.zombie_run.critical_after == 3.0
    assert batch.zombie_run.model_dump(exclude={"idle"}) == config.defaults.zombie_run.model_dump(
        exclude={"idle"}
    )
    assert batch.runaway_loop == config.defaults.runaway_loop
    assert batch.runaway_loop.max_steps == 50
    assert config.for_agent("other-agent").zombie_run.idle is None


def test_overrides_of_several_agents_and_sections_stay_apart() -> None:
    config = DetectorConfig.from_dict(
        {
            "overrides": {
                "a": {"zombie_run": {"enabled": False}},
                "b": {"runaway_loop": {"max_repeats": 10}, "zombie_run": {"min_idle": "10m"}},
            }
        }
    )

    a, b = config.for_agent("a"), config.for_agent("b")
    assert (a.zombie_run.enabled, a.runaway_loop.max_repeats) == (False, 3)
    assert (b.zombie_run.enabled, b.zombie_run.min_idle) == (True, 600.0)
    assert b.runaway_loop.max_repeats == 10
    assert config.defaults.zombie_run.enabled is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"batch-agent": {"zombie_run": {"min_idle": "soon"}}},
            "detectors.overrides.batch-agent.zombie_run.min_idle: 'soon' is not a duration",
        ),
        (
            {"batch-agent": {"zombie_run": {"idel": "5m"}}},
            "detectors.overrides.batch-agent.zombie_run.idel: unknown key",
        ),
        (
            {"batch-agent": {"zombi_run": {"idle": "5m"}}},
            "detectors.overrides.batch-agent.zombi_run: unknown key",
        ),
        (
            {"batch-agent": {"runaway_loop": {"max_repeats": 1}}},
            "detectors.overrides.batch-agent.runaway_loop.max_repeats: ",
        ),
        ({"batch-agent": "strict"}, "detectors.overrides.batch-agent: "),
    ],
)
def test_a_bad_override_names_the_agent_and_the_setting(
    overrides: dict[str, Any], message: str
) -> None:
    assert error_of({"overrides": overrides}).startswith(message)
