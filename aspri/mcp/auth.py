"""Bearer-token check for the streamable HTTP transport (``MCP_TOKEN``).

The SDK's own auth middleware does the HTTP side (401 with ``WWW-Authenticate`` for a missing or
wrong token, the session bound to the principal that opened it); this verifier only compares
the presented token with the configured one, in constant time.
"""

from __future__ import annotations

import hmac

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl

CLIENT_ID = "aspri-mcp-client"


class StaticTokenVerifier(TokenVerifier):
    """Accepts exactly one shared secret."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="", client_id=CLIENT_ID, scopes=[])
        return None


def auth_settings(server_url: str) -> AuthSettings:
    """Settings that turn the SDK's bearer check on without any OAuth endpoints.

    ``issuer_url`` is required by the model but only used for OAuth routes, which a server
    without an authorization-server provider does not mount; no resource metadata is published.
    """
    return AuthSettings(issuer_url=AnyHttpUrl(server_url), resource_server_url=None)
