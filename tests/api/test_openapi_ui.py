"""Both gateways' OpenAPI UIs render in a real Chromium with every request that leaves this
machine blocked: the page, its scripts, styles and favicon all come from the gateway, and the
API key entered through Authorize turns "Try it out" from 401 into 200."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from aspri.api.access import Access
from aspri.api.cronjob.app import create_app as create_cron_app
from aspri.api.whatsapp.app import create_app as create_whatsapp_app
from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.config import Settings
from tests.browser import MARKS, offline, shot
from tests.helpers import API_KEY, serve_asgi

pytestmark = MARKS


async def try_out(page: Page, path: str) -> str:
    """Run ``GET path`` from the UI ("Try it out", "Execute"); return the status it shows."""
    block = page.locator(".opblock-get").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )
    summary = block.locator(".opblock-summary")
    if not await block.locator("button.execute").is_visible():
        if not await block.locator("button.try-out__btn").is_visible():
            await summary.click()
        await block.locator("button.try-out__btn").click()
    status = block.locator(".live-responses-table tbody td.response-col_status")
    before = await status.all_inner_texts()
    await block.locator("button.execute").click()
    if before:  # the previous answer stays until the new one replaces it
        await expect(status).not_to_have_text(before)
    return (await status.inner_text()).split()[0]


async def authorize(page: Page, key: str) -> None:
    """The Authorize dialog, as a person fills it: the API key scheme, then Close."""
    await page.locator(".auth-wrapper .authorize").click()
    scheme = page.locator(".modal-ux .auth-container").filter(has_text="X-API-Key")
    await scheme.locator("input").fill(key)
    await scheme.locator("button.authorize").click()
    await expect(scheme.locator("button", has_text="Logout")).to_be_visible()
    await scheme.locator("button.btn-done").click()


async def test_both_openapi_uis_render_offline(redis: Redis, chromium: Browser) -> None:
    settings = Settings(api_key=API_KEY)
    whatsapp = create_whatsapp_app(settings, redis, LocalChannel())
    cron = create_cron_app(redis, access=Access.from_settings(settings))
    async with serve_asgi(whatsapp) as whatsapp_url, serve_asgi(cron) as cron_url:
        for name, url, operations, probe in (
            ("whatsapp", whatsapp_url, ["/api/send-message", "/api/chats"], "/api/chats"),
            ("cron", cron_url, ["/api/jobs", "/api/jobs/{jobId}"], "/api/jobs"),
        ):
            page = await chromium.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            blocked = await offline(page)
            await page.goto(f"{url}/schema/swagger")
            await expect(page.locator(".swagger-ui .info .title")).to_contain_text("ASPRI")
            paths = page.locator(".opblock-summary-path")
            for operation in operations:
                await expect(paths.filter(has_text=operation).first).to_be_visible()
            await expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
            # The API key scheme is declared, and Authorize makes "Try it out" work.
            assert await try_out(page, probe) == "401"
            await authorize(page, API_KEY)
            assert await try_out(page, probe) == "200"
            # Headless Chromium loads no favicon by itself: fetch the one the page names.
            icon = await page.locator("link[rel=icon]").get_attribute("href")
            assert icon is not None and icon.startswith("/"), icon
            reply = await page.request.get(url + icon)
            assert reply.ok and reply.headers["content-type"] == "image/png"
            await shot(page, f"openapi-ui-{name}", full_page=True)
            assert blocked == [], blocked
            assert errors == [], errors
            await page.close()
