"""Images a person sent, as image content parts for a model that reads images (``LLM_IMAGES``).

The bytes come from the media store the gateway wrote (``ASPRI_DATA_DIR/media``, shared by the
gateway and the engine). Only the newest few images of a session are sent as pictures; older
ones, and every image when the model reads none, stay ``[image: caption]`` text.
"""

from __future__ import annotations

import base64
from typing import Any

from aspri.agents.session import Message
from aspri.config import Settings
from aspri.media import MediaStore

MODEL_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
"""What the OpenAI, Anthropic and Ollama APIs accept as an image."""


class ImageParts:
    """``part(message)``: the image content part of a message, or None."""

    def __init__(self, settings: Settings) -> None:
        self.store = MediaStore(settings.media_dir, {}) if settings.model_reads_images else None

    def part(self, message: Message) -> dict[str, Any] | None:
        if self.store is None or message.image is None:
            return None
        sha256, mime = message.image
        path = self.store.find(sha256)
        if path is None or mime not in MODEL_IMAGE_TYPES:
            return None
        data = base64.b64encode(path.read_bytes()).decode()  # at most the image cap (5 MiB)
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
