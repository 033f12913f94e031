"""The web chat shows the assistant's own state, read without asking the engine: whether the
model answers (the engine workers' health records, as a worker writes them) and who each chat
is (owner, approved contact, stranger waiting for pairing: the engine's access rules over
``access:events``), also after a reload."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from aspri.agents.access import Access as Rules
from aspri.agents.model_state import ModelState
from aspri.api.whatsapp.assistant import model_status
from aspri.streams.health import Beat
from aspri.streams.log import EventLog
from tests.api.whatsapp.conftest import GatewayFactory, settings_for
from tests.browser import MARKS, open_chat, page_errors, shot

pytestmark = MARKS

OWNER = "6281100000001@c.us"
FRIEND = "6281100000002@c.us"
STRANGER = "6281100000003@c.us"
PROBLEM = "no Ollama answers at http://127.0.0.1:11434 (ConnectError)"


async def no_probe() -> str | None:
    return PROBLEM


def test_one_state_from_several_workers() -> None:
    up = {"model": "m", "modelReady": True, "modelSince": 5, "modelProblem": None}
    down = {"model": "m", "modelReady": False, "modelSince": 7, "modelProblem": PROBLEM}
    assert model_status([], "x").state == "unknown"
    assert model_status([{"service": "engine"}], "x").state == "unknown"  # an older worker
    either = model_status([down, up], "x")
    assert (either.state, either.name, either.since, either.problem) == ("answering", "m", 5, None)
    both = model_status([down, {**down, "modelSince": 9}], "x")
    assert (both.state, both.since, both.problem, both.workers) == ("offline", 7, PROBLEM, 2)


async def test_model_state_and_who_is_who_in_the_page(
    serve_gateway: GatewayFactory, chromium: Browser
) -> None:
    where = {"owner_numbers": (OWNER,), "dm_policy": "pairing"}
    async with serve_gateway(**where) as gw:
        for chat, name, text in (
            (OWNER, "Olivia", "/status"),
            (FRIEND, "Frank", "hi, Olivia said I could ask you things"),
            (STRANGER, "Sam", "hello? who is this?"),
        ):
            sent = await gw.client.post(
                "/api/local/messages", json={"from": chat, "name": name, "text": text}
            )
            assert sent.status_code == 202, sent.text
        # The engine's own rules write the approvals and the pairing request.
        rules = Rules(settings_for(**where), EventLog(gw.redis))
        await rules.allow(FRIEND, OWNER, "test:allow")
        code = await rules.request_pairing(STRANGER, "cause-1", "Sam")
        assert code is not None

        page = await chromium.new_page(viewport={"width": 1200, "height": 700})
        errors = page_errors(page)
        await open_chat(page, str(gw.client.base_url), OWNER)
        model = page.locator("#model-state")
        await expect(model).to_have_attribute("data-state", "unknown")  # no engine worker
        await expect(model).to_contain_text("no engine running")
        tags = {
            OWNER: "owner",
            FRIEND: "approved contact",
            STRANGER: "stranger, waiting for pairing",
        }
        for chat, tag in tags.items():
            item = page.locator(f'.chat-item[data-chat-id="{chat}"]')
            await expect(item.locator(".tag")).to_have_text(tag)
        await expect(page.locator("#chat-number")).to_contain_text("owner")

        # A worker whose start-up probe found no model: the page learns it while open.
        state = ModelState(no_probe)
        state.probed(PROBLEM)
        worker = Beat(
            gw.redis, "engine", "w1", details=lambda: {"model": "llama3.2", **state.record()}
        )
        async with worker:
            await expect(model).to_have_attribute("data-state", "offline", timeout=20_000)
            await expect(model).to_contain_text("model offline — commands only, since")
            assert PROBLEM in (await model.get_attribute("title") or "")
            placeholder = page.locator("#message-input")
            await expect(placeholder).to_have_attribute(
                "placeholder", "The model is offline: commands like /help still work"
            )
            await page.reload()  # after a reload: the name, the state and the marks come back
            await expect(page.locator("#chat-name")).to_have_text("Olivia")
            await expect(model).to_have_attribute("data-state", "offline")
            await expect(page.locator(".tag.pairing")).to_have_text(tags[STRANGER])
            await shot(page, "web-chat-model-offline")

            await page.locator(f'.chat-item[data-chat-id="{STRANGER}"]').click()
            await expect(page.locator("#chat-name")).to_have_text("Sam")
            await expect(page.locator("#chat-number")).to_contain_text("waiting for pairing")

            state.answered()  # the model is back (its breaker closed); the record says so
            await worker.write()
            await expect(model).to_have_attribute("data-state", "answering", timeout=20_000)
            await expect(model).to_contain_text("model online since")
            await shot(page, "web-chat-model-online")
        await page.close()
        assert errors == []
