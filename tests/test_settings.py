"""The table of settings: every flag of ``run`` comes from it, each default is its field's,
and what the command line gives reaches the configuration typed. No I/O but argparse."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given as given_
from hypothesis import strategies as st

from trio_transcripts.cli import build_parser
from trio_transcripts.config import DEFAULTS, Config, load_config
from trio_transcripts.lineproto import Schema
from trio_transcripts.settings import KNOWN, SECRET_FILES, SETTINGS, VARIABLES, given

GENESYS = {
    "GENESYS_CLIENT_ID": "id",
    "GENESYS_CLIENT_SECRET": "secret",
    "CONVERSATION_ID": "c1",
    "INFLUX_URL": "http://localhost:8086",
    "INFLUX_DATABASE": "d",
}


def run_flags() -> set[str]:
    (sub,) = [
        action
        for action in build_parser("run")._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    return {flag for action in sub.choices["run"]._actions for flag in action.option_strings}


def test_every_run_flag_is_a_row_of_the_table_or_says_how_the_process_runs() -> None:
    rows = {s.flag for s in SETTINGS if s.flag and "run" in s.commands}
    rows |= {"--backfill", "--no-backfill"}  # one row, a switch both ways
    process = {"-h", "--help", "--log-format", "--debug", "--workers", "--env-file", "--config"}
    assert run_flags() == rows | process


def test_each_tuning_has_a_field_and_takes_its_default_from_it() -> None:
    for setting in SETTINGS:
        if not setting.env:
            assert setting.name in DEFAULTS, setting.name
        elif setting.field is not None:
            assert setting.field in DEFAULTS and setting.default is None, setting.name
    assert DEFAULTS["backfill_give_up_s"] == Config.backfill_give_up_s == 86_400.0
    assert DEFAULTS["influx.create_database"] is True


def test_the_config_file_knows_every_variable_and_secret_file() -> None:
    assert set(KNOWN) == set(VARIABLES) | set(SECRET_FILES)
    assert {"GENESYS_REGION", "INFLUX_TOKEN", "SHARD", "METRICS_ADDRESS"} <= set(VARIABLES)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser("run").parse_args(["run", *argv])


def test_flags_not_given_leave_the_defaults_and_given_ones_arrive_typed() -> None:
    assert given(parse()) == {}
    config = load_config(given(parse()), environ=GENESYS, env_file=None)
    assert config.buffer_capacity == Config.buffer_capacity and config.schema == Schema()
    args = parse(
        "--buffer-capacity", "64", "--spool-max-mb", "2", "--utterance-id-as-tag",
        "--no-backfill", "--spool", "/tmp/s", "--no-create-database", "--influx-no-sync",
        "--region", "eu_west_1",
    )  # fmt: skip
    config = load_config(given(args), environ=GENESYS, env_file=None)
    assert config.buffer_capacity == 64 and config.spool_max_bytes == 2 << 20
    assert config.schema == Schema(utterance_id_as_tag=True) and config.backfill is False
    assert config.spool_dir == Path("/tmp/s")
    assert config.influx is not None and config.influx.schema == config.schema
    assert not config.influx.create_database and config.influx.no_sync
    assert config.login_url == "https://login.mypurecloud.ie"


def test_a_flag_overrides_the_environment() -> None:
    args = parse("--conversation-id", "from-flag")
    config = load_config(given(args), environ=GENESYS, env_file=None)
    assert config.conversation_ids == ("from-flag",)


def test_abbreviations_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse("--buffer-cap", "3")
    assert exit_.value.code == 2
    assert "unrecognized arguments: --buffer-cap" in capsys.readouterr().err


NUMBERS = [s for s in SETTINGS if not s.env and s.parse in (int, float) and s.flag]


@given_(st.data())
def test_any_number_a_flag_gives_reaches_its_field(data: st.DataObject) -> None:
    setting = data.draw(st.sampled_from(NUMBERS))
    value = data.draw(
        st.integers(1, 10_000) if setting.parse is int else st.floats(0.001, 1e6, allow_nan=False)
    )
    assert setting.flag is not None
    config = load_config(given(parse(setting.flag, str(value))), environ=GENESYS, env_file=None)
    expected = setting.to_field(value) if setting.to_field else value
    assert getattr(config, setting.name) == pytest.approx(expected)
