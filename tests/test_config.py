"""Settings are read once from the environment and a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from aspri.config import ConfigError, Settings


def test_defaults_match_the_design() -> None:
    s = Settings.from_env({})
    assert (s.whatsapp_port, s.cronjob_port, s.mcp_port) == (3001, 3002, 3003)
    assert s.redis_url is None and s.data_dir == Path(".aspri")
    assert s.whatsapp_engine == "local" and s.llm_provider == "ollama"
    assert (s.session_history_limit, s.session_timeout_minutes) == (50, 60)
    assert s.cronjob_url == "http://127.0.0.1:3002"


def test_values_are_parsed_and_urls_follow_ports() -> None:
    s = Settings.from_env(
        {
            "WHATSAPP_PORT": "4001",
            "OWNER_NUMBERS": "+62 812-3456-7890, 6281111111111@c.us,0044 20 7946 0000,",
            "LLM_PROVIDER": "OpenAI",
        }
    )
    assert s.whatsapp_port == 4001 and s.whatsapp_url == "http://127.0.0.1:4001"
    assert s.owner_numbers == ("6281234567890@c.us", "6281111111111@c.us", "442079460000@c.us")
    assert s.llm_provider == "openai" and s.model_name == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("WHATSAPP_PORT", "abc", "invalid literal"),
        ("CRONJOB_PORT", "70000", "0 to 65535"),
        ("WHATSAPP_ENGINE", "telegram", "local, cloud, browser"),
        ("SESSION_HISTORY_LIMIT", "0", "positive"),
        ("OWNER_NUMBERS", "0812345678", "country code"),
        ("OWNER_NUMBERS", "120363012345678901@g.us", "not a phone number"),
        ("DM_POLICY", "everyone", "pairing, allowlist, open, disabled"),
        ("ALLOWED_GROUPS", "6281234567890@c.us", "not a group chat id"),
        ("WHATSAPP_CLOUD_TEMPLATE", "Reminder Template", "lower-case letters"),
        ("WHATSAPP_CLOUD_TEMPLATE_LANG", "english", "en_US"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value) and hint in str(info.value)
