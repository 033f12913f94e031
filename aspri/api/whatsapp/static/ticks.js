// The assistant's messages' delivery ticks in the local web chat, and this page's acks.
// The page stands in for the person's phone: it acknowledges each assistant message as
// "delivered" once it has it and "read" once it is shown in the open chat while the page is
// visible. The gateway records those as statuses and pushes every move back over SSE
// ("status" events), so the ticks show what the log says, never what the page assumed.
"use strict";

const TICK_MARKS = { queued: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };
const TICK_RANK = { queued: 0, sent: 1, delivered: 2, read: 3, failed: 4 };
const acked = new Set();  // "<messageId> <status>" this page has already reported

function paintTick(span, status, error) {
  span.dataset.status = status;
  span.textContent = TICK_MARKS[status] || "";
  const label = status === "failed" ? `not sent${error ? `: ${error}` : ""}` : status;
  span.title = label;
  span.setAttribute("aria-label", label);
}

// The tick of one assistant message, from the status the history or the live stream gave it.
function tickFor(message) {
  const span = document.createElement("span");
  span.className = "status-ticks";
  paintTick(span, message.status || "sent", message.statusError);
  return span;
}

// A StatusUpdate from the live stream: move the message's tick forward (never back).
function moveTick(update) {
  for (const row of document.querySelectorAll("#message-list .row-msg")) {
    if (row.dataset.messageId !== update.messageId) continue;
    const span = row.querySelector(".status-ticks");
    if (!span) continue;
    if ((TICK_RANK[update.status] ?? -1) > (TICK_RANK[span.dataset.status] ?? -1)) {
      paintTick(span, update.status, update.statusError);
    }
  }
}

async function acknowledge(chatId, messageIds, status) {
  const fresh = messageIds.filter((id) => id && !acked.has(`${id} ${status}`));
  if (!fresh.length) return;
  fresh.forEach((id) => acked.add(`${id} ${status}`));
  try {
    const response = await fetch("/api/local/acks", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ chatId, messageIds: fresh.slice(0, 200), status }),
    });
    if (!response.ok) throw new Error(response.statusText);
  } catch (_) {
    fresh.forEach((id) => acked.delete(`${id} ${status}`));  // the next load tries again
  }
}

// Acknowledge the assistant's messages shown in the open chat: delivered, then read when the
// page is visible (a hidden tab has them, but nobody has seen them).
async function acknowledgeOpenChat(chatId) {
  const rows = [...document.querySelectorAll("#message-list .row-msg")].filter(
    (row) => row.dataset.messageId && row.querySelector(".status-ticks"),
  );
  const below = (rank) => rows
    .filter((row) => (TICK_RANK[row.querySelector(".status-ticks").dataset.status] ?? 9) < rank)
    .map((row) => row.dataset.messageId);
  await acknowledge(chatId, below(TICK_RANK.delivered), "delivered");
  if (document.visibilityState === "visible") {
    await acknowledge(chatId, below(TICK_RANK.read), "read");
  }
}
