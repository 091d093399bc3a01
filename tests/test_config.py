"""Settings: environment, .env and flags; every problem at once; secrets never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_transcripts.config import load_config
from trio_transcripts.errors import ConfigError
from trio_transcripts.influx_settings import Api

GENESYS = {
    "GENESYS_CLIENT_ID": "id-1",
    "GENESYS_CLIENT_SECRET": "top-secret",
    "CONVERSATION_ID": "c1, c2 ,c3",
}


def test_env_file_then_environment_then_flags(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        '# comment\nexport GENESYS_REGION="eu-west-1"\nCONVERSATION_ID=from-file\n'
        "INFLUX_URL=http://file:8086\nINFLUX_DATABASE='transcripts'\n"
    )
    config = load_config(
        {"INFLUX_URL": "http://flag:8086"},
        environ={**GENESYS, "INFLUX_URL": "http://env:8086"},
        env_file=env_file,
    )
    assert config.login_url == "https://login.mypurecloud.ie"  # from .env
    assert config.conversation_ids == ("c1", "c2", "c3")  # environment beats .env
    assert config.influx is not None and config.influx.url == "http://flag:8086"  # flag wins
    assert config.influx.api() is Api.V1 and config.influx.database == "transcripts"
    assert "top-secret" not in repr(config)


def test_every_problem_is_reported_at_once_without_secrets() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            environ={
                "GENESYS_CLIENT_SECRET": "top-secret",
                "GENESYS_REGION": "mars",
                "GENESYS_CLIENT_ID": "",
                "INFLUX_TOKEN": "tok-secret",
            },
            env_file=None,
        )
    problems = caught.value.problems
    text = "\n".join(problems)
    assert "GENESYS_CLIENT_ID is missing" in text
    assert "CONVERSATION_ID or GENESYS_QUEUE_ID is missing" in text
    assert "INFLUX_URL is missing while INFLUX_TOKEN is set" in text
    assert "top-secret" not in text and "tok-secret" not in text
    assert all("e.g." in p or "GENESYS_CLIENT_SECRET" in p for p in problems)


def test_region_error_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="GENESYS_REGION: unknown Genesys region 'mars'"):
        load_config(environ={**GENESYS, "GENESYS_REGION": "mars"}, env_file=None)


def test_fragment_stream_needs_no_genesys_credentials() -> None:
    config = load_config(environ={"GENESYS_STREAM_URL": "wss://relay/transcripts"}, env_file=None)
    assert config.stream_url == "wss://relay/transcripts" and config.influx is None


def test_influx_2x_and_ambiguity() -> None:
    v2 = {
        **GENESYS,
        "INFLUX_URL": "https://cloud",
        "INFLUX_ORG": "o",
        "INFLUX_BUCKET": "b",
        "INFLUX_TOKEN": "t",
    }
    config = load_config(environ=v2, env_file=None)
    assert config.influx is not None and config.influx.api() is Api.V2
    with pytest.raises(ConfigError, match="ambiguous"):
        load_config(environ={**v2, "INFLUX_DATABASE": "d"}, env_file=None)


def test_config_file_is_below_env_and_flags_and_secrets_come_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    config_file = tmp_path / "tt.toml"
    config_file.write_text(
        'genesys_client_id = "file-id"\n'
        f'genesys_client_secret_file = "{secret}"\n'
        'conversation_id = ["c1", "c2"]\n'
        'influx_url = "http://file:8086"\n'
        'influx_database = "transcripts"\n'
        'metrics_address = "127.0.0.1:9464"\n'
    )
    config = load_config(
        {"INFLUX_URL": "http://flag:8086"},
        environ={"GENESYS_CLIENT_ID": "env-id"},
        env_file=None,
        config_file=config_file,
    )
    assert config.client_id == "env-id" and config.client_secret == "from-a-file"
    assert config.conversation_ids == ("c1", "c2")
    assert config.influx is not None and config.influx.url == "http://flag:8086"
    assert config.metrics_address == "127.0.0.1:9464"
    assert "from-a-file" not in repr(config)


def test_config_file_problems_name_the_key_and_its_closest_valid_one(tmp_path: Path) -> None:
    config_file = tmp_path / "tt.toml"
    config_file.write_text('genesys_clinet_id = "x"\ninflux_url = true\n')
    with pytest.raises(ConfigError) as caught:
        load_config(
            environ={**GENESYS, "GENESYS_CLIENT_SECRET_FILE": str(tmp_path / "nope")},
            env_file=None,
            config_file=config_file,
        )
    problems = "\n".join(caught.value.problems)
    assert "unknown key 'genesys_clinet_id'; did you mean 'genesys_client_id'?" in problems
    assert "influx_url must be a string" in problems
    assert "GENESYS_CLIENT_SECRET and GENESYS_CLIENT_SECRET_FILE are both set" in problems
    assert "top-secret" not in problems


def test_metrics_address_must_be_host_and_port() -> None:
    with pytest.raises(ConfigError, match="METRICS_ADDRESS must be HOST:PORT"):
        load_config(environ={**GENESYS, "METRICS_ADDRESS": "9464"}, env_file=None)
