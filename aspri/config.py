"""Every setting of ASPRI, read once from the environment.

One frozen object instead of ``os.environ`` lookups scattered through the code: a bad value
fails at start-up with the variable's name, not deep inside a request.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

from aspri.schemas.chatid import InvalidChatId, is_group, normalize

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a value ASPRI cannot use; the message names the variable."""


def _read(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not valid: {exc}") from None


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("a port is a number from 0 to 65535")
    return value


def _opt_port(raw: str) -> int | None:
    return _port(raw) if raw.strip() else None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or a positive whole number")
    return value


MEDIA_CAPS_MB: dict[str, float] = {
    "image": 5,
    "audio": 16,
    "voice": 16,
    "video": 16,
    "document": 100,
    "sticker": 0.5,
}
"""WhatsApp's own limits per kind, in MiB (``MEDIA_MAX_MB`` overrides any of them)."""


def _media_caps(raw: str) -> dict[str, int]:
    """``kind=MiB`` pairs, comma-separated; kinds not named keep their default."""
    caps = dict(MEDIA_CAPS_MB)
    for item in _csv(raw):
        kind, sep, value = item.partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in caps:
            raise ValueError(f"{item!r}: use kind=MiB with a kind of {', '.join(caps)}")
        caps[kind] = _positive_float(value)
    return {kind: int(mb * 1024 * 1024) for kind, mb in caps.items()}


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must be 0 or a positive number")
    return value


def _at_least(low: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < low:
            raise ValueError(f"must be a whole number of at least {low}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw.lower()

    return parse


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _str(raw: str) -> str:
    return raw


def _numbers(raw: str) -> tuple[str, ...]:
    """Phone numbers in any common form (``+62 812...``, ``0062...``, ``62...@c.us``) as chat
    ids, so every comparison with a sender's chat id is exact."""
    out = []
    for part in _csv(raw):
        try:
            chat_id = normalize(part)
        except InvalidChatId as exc:
            raise ValueError(str(exc)) from None
        if not chat_id.endswith("@c.us"):
            raise ValueError(f"{part!r} is not a phone number")
        out.append(chat_id)
    return tuple(out)


def _groups(raw: str) -> tuple[str, ...]:
    out = _csv(raw)
    for part in out:
        if not is_group(part):
            raise ValueError(f"{part!r} is not a group chat id like 120363012345678901@g.us")
    return out


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _opt(raw: str) -> str | None:
    return raw


def _template(raw: str) -> str | None:
    """A WhatsApp template name as Meta allows it: lower-case letters, digits, underscores."""
    if not re.fullmatch(r"[a-z0-9_]{1,512}", raw):
        raise ValueError("a template name has only lower-case letters, digits and underscores")
    return raw


def _language(raw: str) -> str:
    """A template language code as Meta lists them: ``en``, ``en_US``, ``pt_BR``, ``zh_HK``."""
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", raw):
        raise ValueError("a language code looks like en, id or en_US")
    return raw


def _temperature(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 2:
        raise ValueError("a temperature is a number from 0 to 2")
    return value


def _stream(raw: str) -> str:
    if any(ch.isspace() for ch in raw) or raw.startswith("chat:"):
        raise ValueError("a stream name has no spaces and does not start with 'chat:'")
    return raw


def _redis_url(e: Mapping[str, str]) -> str | None:
    """``REDIS_URL``; else the original services' ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``
    (either of the first two set means an external server, so no embedded one)."""
    url = _read(e, "REDIS_URL", None, _opt)
    if url is not None:
        return url
    host = _read(e, "REDIS_HOST", None, _opt)
    port = _read(e, "REDIS_PORT", None, _opt_port)
    if host is None and port is None:
        return None
    password = _read(e, "REDIS_PASSWORD", None, _opt)
    auth = f":{urllib.parse.quote(password, safe='')}@" if password else ""
    netloc = f"[{host}]" if host and ":" in host else (host or "localhost")
    return f"redis://{auth}{netloc}:{port or 6379}/0"


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file as dotenv and compose read it (``# comments``, also
    after an unquoted value; quotes; ``export``): the original ASPRI's file works unchanged."""
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_env_file(path: Path = Path(".env")) -> None:
    """Add ``path``'s variables to the environment, never over one already set; the children
    of ``aspri up`` inherit them. A missing file is no error."""
    if path.is_file():
        for name, value in read_env_file(path).items():
            os.environ.setdefault(name, value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The whole configuration; see the table in README.md."""

    redis_url: str | None = None
    data_dir: Path = Path(".aspri")
    whatsapp_port: int = 3001
    cronjob_port: int = 3002
    mcp_port: int = 3003
    host: str = "127.0.0.1"
    public_hosts: tuple[str, ...] = ()
    whatsapp_url: str = "http://127.0.0.1:3001"
    cronjob_url: str = "http://127.0.0.1:3002"
    whatsapp_engine: str = "local"
    consumer_name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    llm_provider: str = "ollama"
    llm_model: str | None = None
    ollama_base_url: str = "http://localhost:11434"
    ollama_model: str = "qwen2.5:3b"
    openai_model: str = "gpt-4o-mini"
    anthropic_model: str = "claude-3-5-haiku-latest"
    llm_temperature: float | None = None
    """None: the provider's own default."""
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_api_key: str | None = None
    llm_timeout_s: float = 120.0
    session_history_limit: int = 50
    session_timeout_minutes: int = 60
    memory_prompt_tokens: int = 800
    """Estimated tokens of saved facts and session summaries in every turn's prompt."""
    memory_fact_max_chars: int = 500
    memory_summaries: int = 3
    """Latest session summaries a prompt may carry (0: none are written or shown)."""
    embeddings_model: str | None = None
    embeddings_provider: str = "ollama"
    timezone: str = "UTC"
    api_key: str | None = None
    mcp_token: str | None = None
    owner_numbers: tuple[str, ...] = ()
    """Owners' chat ids (``<digits>@c.us``), from ``OWNER_NUMBERS`` in any common notation."""
    dm_policy: str = "pairing"
    allowed_groups: tuple[str, ...] = ()
    assistant_name: str = "ASPRI"
    max_deliveries: int = 5
    claim_idle_ms: int = 30_000
    retry_backoff_s: float = 1.0
    engine_concurrency: int = 8
    idempotency_ttl_s: int = 7 * 24 * 3600
    stream_trim_keep: int = 1000
    cron_grace_s: float = 60.0
    cron_lease_s: float = 10.0
    cron_allow_seconds: bool = False
    cron_max_jobs_per_chat: int = 100
    health_ttl_s: float = 15.0
    whatsapp_stream: str = "whatsapp:messages"
    """Inbound messages, the engine's work queue (``WHATSAPP_STREAM_NAME``, as the original)."""
    cronjob_stream: str = "cronjob:events"
    """Job triggers, the engine's work queue (``CRONJOB_STREAM_NAME``, as the original)."""
    whatsapp_cloud_verify_token: str | None = None
    whatsapp_cloud_app_secret: str | None = None
    whatsapp_cloud_access_token: str | None = None
    whatsapp_cloud_phone_number_id: str | None = None
    whatsapp_cloud_api_base: str = "https://graph.facebook.com/v21.0"
    whatsapp_cloud_template: str | None = None
    """An approved message template with one body parameter: a Cloud API send outside the
    person's 24-hour window goes as this template with the text as the parameter (None: such a
    send fails, recorded in the chat and reported to the owner)."""
    whatsapp_cloud_template_lang: str = "en_US"
    """The template's language code."""
    send_rate_per_s: float | None = None
    """None: the engine's default (``aspri.api.whatsapp.pacing.ENGINE_PACING``)."""
    inbound_rate_per_minute: float = 20.0
    inbound_burst: int = 10
    send_per_chat_interval_s: float | None = None
    chromium_path: str = "/usr/bin/chromium"
    browser_url: str = "https://web.whatsapp.com"
    browser_headless: bool = True
    wajs_path: str | None = None
    wajs_package: str = "@wppconnect/wa-js@4.6.0"
    wajs_integrity: str = (
        "sha512-epf+ucZO9c25dCaGraslVNHB1mRjid7rfijZhKbalXed/"
        "gbDzi6u69wdHCgPbcZW9McVpKmVW+3AzffI39p2SQ=="
    )
    media_max_bytes: dict[str, int] = field(default_factory=lambda: _media_caps(""))
    """Largest file stored per kind (``MEDIA_MAX_MB``); a larger one is refused and recorded."""
    media_retention_days: float = 90.0
    """Stored media not received again for this long is removed (0: kept for ever)."""
    llm_images: str = "auto"
    """``on``: images go to the model as image parts; ``off``: as text; ``auto``: on for
    ``openai`` and ``anthropic``, off for ``ollama`` (many Ollama models read no images)."""
    transcription_provider: str = "none"
    transcription_base_url: str | None = None
    """None: ``OPENAI_BASE_URL``, else OpenAI's own."""
    transcription_api_key: str | None = None
    """None: ``OPENAI_API_KEY``."""
    transcription_model: str = "whisper-1"
    transcription_local_model: str = "small"
    """``local`` transcription: a faster-whisper model size name (``tiny``, ``base``, ``small``,
    ``medium``...) or the path of a converted model directory."""
    speech_provider: str = "none"
    """``openai``: replies of chats with ``/voice on`` are spoken (``POST /audio/speech``)."""
    speech_base_url: str | None = None
    """None: ``OPENAI_BASE_URL``, else OpenAI's own."""
    speech_api_key: str | None = None
    """None: ``OPENAI_API_KEY``."""
    speech_model: str = "tts-1"
    speech_voice: str = "alloy"
    document_text_max_chars: int = 20_000
    """A document's text kept for the model (PDF, plain text), at most this long (0: none)."""
    reply_quote: str = "first"
    """When a reply quotes the message it answers: ``always``, ``off``, or ``first`` — only when
    the person wrote again after that message (the reply would not sit right under it)."""
    typing_refresh_s: float = 20.0
    """While a turn runs, its typing indicator is sent again this often (the Cloud API's lasts
    25 s)."""
    log_format: str = "auto"
    log_level: str = "INFO"
    service_name: str | None = None
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable once; raise ConfigError naming the first bad one."""
        e = os.environ if env is None else env
        d = cls()
        whatsapp_port = _read(e, "WHATSAPP_PORT", d.whatsapp_port, _port)
        cronjob_port = _read(e, "CRONJOB_PORT", d.cronjob_port, _port)
        host = _read(e, "ASPRI_HOST", d.host, _str)
        return cls(
            redis_url=_redis_url(e),
            data_dir=_read(e, "ASPRI_DATA_DIR", d.data_dir, Path),
            whatsapp_port=whatsapp_port,
            cronjob_port=cronjob_port,
            mcp_port=_read(e, "MCP_PORT", d.mcp_port, _port),
            host=host,
            public_hosts=_read(e, "ASPRI_PUBLIC_HOSTS", d.public_hosts, _csv),
            whatsapp_url=_read(e, "WHATSAPP_URL", f"http://127.0.0.1:{whatsapp_port}", _str),
            cronjob_url=_read(e, "CRONJOB_URL", f"http://127.0.0.1:{cronjob_port}", _str),
            whatsapp_engine=_read(
                e, "WHATSAPP_ENGINE", d.whatsapp_engine, _choice("local", "cloud", "browser")
            ),
            consumer_name=_read(e, "CONSUMER_NAME", d.consumer_name, _str),
            llm_provider=_read(
                e, "LLM_PROVIDER", d.llm_provider, _choice("ollama", "openai", "anthropic")
            ),
            llm_model=_read(e, "LLM_MODEL", None, _opt),
            ollama_base_url=_read(e, "OLLAMA_BASE_URL", d.ollama_base_url, _str),
            ollama_model=_read(e, "OLLAMA_MODEL", d.ollama_model, _str),
            openai_model=_read(e, "OPENAI_MODEL", d.openai_model, _str),
            anthropic_model=_read(e, "ANTHROPIC_MODEL", d.anthropic_model, _str),
            llm_temperature=_read(e, "LLM_TEMPERATURE", None, _temperature),
            openai_api_key=_read(e, "OPENAI_API_KEY", None, _opt),
            openai_base_url=_read(e, "OPENAI_BASE_URL", None, _opt),
            anthropic_api_key=_read(e, "ANTHROPIC_API_KEY", None, _opt),
            llm_timeout_s=_read(e, "LLM_TIMEOUT_SECONDS", d.llm_timeout_s, _positive_float),
            session_history_limit=_read(
                e, "SESSION_HISTORY_LIMIT", d.session_history_limit, _positive_int
            ),
            session_timeout_minutes=_read(
                e, "SESSION_TIMEOUT_MINUTES", d.session_timeout_minutes, _positive_int
            ),
            memory_prompt_tokens=_read(
                e, "MEMORY_PROMPT_TOKENS", d.memory_prompt_tokens, _at_least(100)
            ),
            memory_fact_max_chars=_read(
                e, "MEMORY_FACT_MAX_CHARS", d.memory_fact_max_chars, _positive_int
            ),
            memory_summaries=_read(e, "MEMORY_SUMMARIES", d.memory_summaries, _non_negative_int),
            embeddings_model=_read(e, "EMBEDDINGS_MODEL", None, _opt),
            embeddings_provider=_read(
                e,
                "EMBEDDINGS_PROVIDER",
                "openai" if e.get("LLM_PROVIDER", "").strip().lower() == "openai" else "ollama",
                _choice("ollama", "openai"),
            ),
            timezone=_read(e, "ASPRI_TIMEZONE", d.timezone, _str),
            api_key=_read(e, "ASPRI_API_KEY", None, _opt),
            mcp_token=_read(e, "MCP_TOKEN", None, _opt),
            owner_numbers=_read(e, "OWNER_NUMBERS", d.owner_numbers, _numbers),
            dm_policy=_read(
                e, "DM_POLICY", d.dm_policy, _choice("pairing", "allowlist", "open", "disabled")
            ),
            allowed_groups=_read(e, "ALLOWED_GROUPS", d.allowed_groups, _groups),
            assistant_name=_read(e, "ASSISTANT_NAME", d.assistant_name, _str),
            max_deliveries=_read(e, "MAX_DELIVERIES", d.max_deliveries, _positive_int),
            claim_idle_ms=_read(e, "CLAIM_IDLE_MS", d.claim_idle_ms, _positive_int),
            retry_backoff_s=_read(e, "RETRY_BACKOFF_SECONDS", d.retry_backoff_s, _positive_float),
            engine_concurrency=_read(e, "ENGINE_CONCURRENCY", d.engine_concurrency, _positive_int),
            idempotency_ttl_s=_read(
                e, "IDEMPOTENCY_TTL_SECONDS", d.idempotency_ttl_s, _positive_int
            ),
            stream_trim_keep=_read(e, "STREAM_TRIM_KEEP", d.stream_trim_keep, _positive_int),
            cron_grace_s=_read(e, "CRON_GRACE_SECONDS", d.cron_grace_s, _positive_float),
            cron_lease_s=_read(e, "CRON_LEASE_SECONDS", d.cron_lease_s, _positive_float),
            cron_allow_seconds=_read(e, "CRON_ALLOW_SECONDS", d.cron_allow_seconds, _bool),
            cron_max_jobs_per_chat=_read(
                e, "CRON_MAX_JOBS_PER_CHAT", d.cron_max_jobs_per_chat, _positive_int
            ),
            health_ttl_s=_read(e, "HEALTH_TTL_SECONDS", d.health_ttl_s, _positive_float),
            whatsapp_stream=_read(e, "WHATSAPP_STREAM_NAME", d.whatsapp_stream, _stream),
            cronjob_stream=_read(e, "CRONJOB_STREAM_NAME", d.cronjob_stream, _stream),
            whatsapp_cloud_verify_token=_read(e, "WHATSAPP_CLOUD_VERIFY_TOKEN", None, _opt),
            whatsapp_cloud_app_secret=_read(e, "WHATSAPP_CLOUD_APP_SECRET", None, _opt),
            whatsapp_cloud_access_token=_read(e, "WHATSAPP_CLOUD_ACCESS_TOKEN", None, _opt),
            whatsapp_cloud_phone_number_id=_read(e, "WHATSAPP_CLOUD_PHONE_NUMBER_ID", None, _opt),
            whatsapp_cloud_template=_read(e, "WHATSAPP_CLOUD_TEMPLATE", None, _template),
            whatsapp_cloud_template_lang=_read(
                e, "WHATSAPP_CLOUD_TEMPLATE_LANG", d.whatsapp_cloud_template_lang, _language
            ),
            whatsapp_cloud_api_base=_read(
                e, "WHATSAPP_CLOUD_API_BASE", d.whatsapp_cloud_api_base, _str
            ),
            send_rate_per_s=_read(e, "WHATSAPP_SEND_RATE", None, _positive_float),
            inbound_rate_per_minute=_read(
                e, "INBOUND_RATE_PER_MINUTE", d.inbound_rate_per_minute, _positive_float
            ),
            inbound_burst=_read(e, "INBOUND_BURST", d.inbound_burst, _positive_int),
            send_per_chat_interval_s=_read(e, "WHATSAPP_PER_CHAT_INTERVAL", None, float),
            chromium_path=_read(e, "CHROMIUM_PATH", d.chromium_path, _str),
            browser_url=_read(e, "WHATSAPP_WEB_URL", d.browser_url, _str),
            browser_headless=_read(e, "WHATSAPP_BROWSER_HEADLESS", d.browser_headless, _bool),
            wajs_path=_read(e, "WHATSAPP_WAJS_PATH", None, _opt),
            wajs_package=_read(e, "WHATSAPP_WAJS_PACKAGE", d.wajs_package, _str),
            wajs_integrity=_read(e, "WHATSAPP_WAJS_INTEGRITY", d.wajs_integrity, _str),
            media_max_bytes=_read(e, "MEDIA_MAX_MB", d.media_max_bytes, _media_caps),
            media_retention_days=_read(
                e, "MEDIA_RETENTION_DAYS", d.media_retention_days, _non_negative_float
            ),
            llm_images=_read(e, "LLM_IMAGES", d.llm_images, _choice("auto", "on", "off")),
            transcription_provider=_read(
                e,
                "TRANSCRIPTION_PROVIDER",
                d.transcription_provider,
                _choice("openai", "local", "none"),
            ),
            transcription_base_url=_read(e, "TRANSCRIPTION_BASE_URL", None, _opt),
            transcription_api_key=_read(e, "TRANSCRIPTION_API_KEY", None, _opt),
            transcription_model=_read(e, "TRANSCRIPTION_MODEL", d.transcription_model, _str),
            transcription_local_model=_read(
                e, "TRANSCRIPTION_LOCAL_MODEL", d.transcription_local_model, _str
            ),
            speech_provider=_read(
                e, "SPEECH_PROVIDER", d.speech_provider, _choice("openai", "none")
            ),
            speech_base_url=_read(e, "SPEECH_BASE_URL", None, _opt),
            speech_api_key=_read(e, "SPEECH_API_KEY", None, _opt),
            speech_model=_read(e, "SPEECH_MODEL", d.speech_model, _str),
            speech_voice=_read(e, "SPEECH_VOICE", d.speech_voice, _str),
            document_text_max_chars=_read(
                e, "DOCUMENT_TEXT_MAX_CHARS", d.document_text_max_chars, _non_negative_int
            ),
            reply_quote=_read(e, "REPLY_QUOTE", d.reply_quote, _choice("off", "first", "always")),
            typing_refresh_s=_read(
                e, "TYPING_REFRESH_SECONDS", d.typing_refresh_s, _positive_float
            ),
            log_format=_read(e, "LOG_FORMAT", d.log_format, _choice("auto", "text", "json")),
            log_level=_read(
                e,
                "LOG_LEVEL",
                d.log_level,
                lambda r: _choice("debug", "info", "warning", "error")(r).upper(),
            ),
            service_name=_read(e, "OTEL_SERVICE_NAME", None, _opt),
            metrics_port=_read(e, "METRICS_PORT", None, _opt_port),
        )

    @property
    def model_reads_images(self) -> bool:
        if self.llm_images == "auto":
            return self.llm_provider in ("openai", "anthropic")
        return self.llm_images == "on"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def model_name(self) -> str:
        """The model actually used for the chosen provider."""
        if self.llm_model:
            return self.llm_model
        return {
            "ollama": self.ollama_model,
            "openai": self.openai_model,
            "anthropic": self.anthropic_model,
        }[self.llm_provider]
