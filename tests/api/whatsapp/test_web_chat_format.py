"""The web chat in a real Chromium: WhatsApp's formatting rules, and the contact's name in the
header after a reload or a deep link, when nothing was typed in this browser."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.api.whatsapp.conftest import GatewayFactory
from tests.browser import MARKS, page_errors, shot
from tests.helpers import chat_login_url

ALICE = "6281234567890@c.us"
CRON = "*/30 9-17 * * 1-5"

pytestmark = MARKS

# (text, the HTML the chat renders for it)
CASES = [
    ("*bold*", "<strong>bold</strong>"),
    ("_it_ ~gone~ `x = 1`", "<em>it</em> <s>gone</s> <code>x = 1</code>"),
    ("(*yes*), _ok_.", "(<strong>yes</strong>), <em>ok</em>."),
    ("*bold _and italic_*", "<strong>bold <em>and italic</em></strong>"),
    # Markers must touch text inside and must not sit inside a word: all of these stay as typed.
    (CRON, CRON),
    (f"/remind {CRON} stand up", f"/remind {CRON} stand up"),
    ("0 */2 * * *", "0 */2 * * *"),
    ("2*3*4 and a*b* and snake_case_name", "2*3*4 and a*b* and snake_case_name"),
    ("* not bold * and _ not italic _", "* not bold * and _ not italic _"),
    ("*no\nline break*", "*no\nline break*"),
    ("**", "**"),
    # Inside code nothing is formatted.
    (f"`{CRON}` is every half hour", f"<code>{CRON}</code> is every half hour"),
    ("```\n*raw* _text_\n```", '<code class="block">*raw* _text_</code>'),
    ("```a\n  b```", '<code class="block">a\n  b</code>'),
    # Links stay whole, underscores and all.
    (
        "see https://example.com/a_b_c now",
        'see <a href="https://example.com/a_b_c" target="_blank" rel="noopener noreferrer">'
        "https://example.com/a_b_c</a> now",
    ),
    ("<b>not html</b>", "&lt;b&gt;not html&lt;/b&gt;"),
]


async def rendered(browser: Browser, url: str, texts: list[str]) -> list[str]:
    page = await browser.new_page()
    await page.goto(chat_login_url(url))  # signs in, then shows /chat
    html: list[str] = await page.evaluate(
        """(texts) => texts.map((t) => {
             const box = document.createElement("div");
             box.append(formatted(t));
             return box.innerHTML;
           })""",
        texts,
    )
    await page.close()
    return html


async def test_whatsapp_formatting_rules(serve_gateway: GatewayFactory, chromium: Browser) -> None:
    async with serve_gateway() as gw:
        got = await rendered(chromium, str(gw.client.base_url), [text for text, _ in CASES])
    for (text, want), html in zip(CASES, got, strict=True):
        assert html == want, f"{text!r} rendered as {html!r}, want {want!r}"


async def test_header_names_the_contact_after_a_deep_link_and_a_reload(
    serve_gateway: GatewayFactory, chromium: Browser
) -> None:
    async with serve_gateway() as gw:
        # Alice wrote from another browser: this one never typed her name.
        sent = await gw.client.post(
            "/api/local/messages",
            json={"from": ALICE, "name": "Alice", "text": "what does /help say?"},
        )
        assert sent.status_code == 202
        reply = f"Try */remind {CRON} stand up*, or *bold* and ```\n/jobs\n```"
        answer = await gw.client.post(
            "/api/send-message", json={"phoneNumber": ALICE, "message": reply}
        )
        assert answer.status_code == 200
        page = await chromium.new_page(viewport={"width": 1200, "height": 760})
        errors = page_errors(page)
        await page.goto(chat_login_url(str(gw.client.base_url)))
        await page.goto("about:blank")  # the deep link below is then a fresh page load
        await page.goto(f"{gw.client.base_url}/chat#{ALICE.replace('@', '%40')}")
        await expect(page.locator("#chat-name")).to_have_text("Alice")
        bubble = page.locator(".bubble.in")
        await expect(bubble.locator("strong").first).to_have_text(f"/remind {CRON} stand up")
        await expect(bubble.locator("code.block")).to_have_text("/jobs")
        await page.reload()
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        await expect(page.locator("#chat-name")).to_have_text("Alice")
        await expect(page.locator(".chat-item .name").first).to_have_text("Alice")
        await shot(page, "whatsapp-web-chat-formatting")
        assert errors == []
