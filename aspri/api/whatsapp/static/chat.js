// ASPRI's local web chat: you write as a WhatsApp contact, ASPRI answers.
// History comes from the gateway's REST API (the event log); new messages arrive over SSE.
// Text is always inserted as DOM text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const NAMES_KEY = "aspri.localNames";

const state = {
  chats: new Map(),       // chatId -> ChatSummary (+ unread)
  current: null,          // chatId of the open chat
  shown: new Set(),       // eventIds rendered in the open chat
  live: [],               // the open chat's latest live messages (a reload racing them keeps them)
  nextBefore: null,       // cursor for older messages
  loadingOlder: false,
  lastDay: null,          // day label of the newest rendered message
  lastSide: null,         // side ("in"/"out") of the newest rendered message
  names: JSON.parse(localStorage.getItem(NAMES_KEY) || "{}"),
  learned: new Map(),     // chatId -> the contact's name as its messages give it
  model: null,            // ModelStatus: does the assistant's model answer, since when
  people: new Map(),      // chatId -> PersonAccess: owner, contact, stranger (pairing?)
  typing: new Map(),      // chatId -> timer ending its "typing…" line (the assistant works)
  texts: new Map(),       // message id -> { body, fromMe }: what a quoted block shows
};

// ------------------------------------------------------------------ helpers

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok || !body || !body.success) {
    const error = new Error(body && body.error ? body.error.message : response.statusText);
    error.status = response.status;
    throw error;
  }
  return body.data;
}

function chatIdOf(input) {
  const raw = input.trim();
  if (raw.includes("@")) return raw;
  let digits = raw.replace(/[\s\-.()/]/g, "");
  if (digits.startsWith("+")) digits = digits.slice(1);
  else if (digits.startsWith("00")) digits = digits.slice(2);
  if (!/^[1-9]\d{6,14}$/.test(digits)) return null;
  return `${digits}@c.us`;
}

const numberOf = (chatId) => chatId.split("@")[0];
const displayNumber = (chatId) => (chatId.endsWith("@c.us") ? "+" : "") + numberOf(chatId);
const nameOf = (chatId) =>
  state.names[chatId] || (state.chats.get(chatId) || {}).name || state.learned.get(chatId) || null;

function initials(text) {
  const words = text.replace(/[^\p{L}\p{N} ]/gu, "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "#";
  return (words[0][0] + (words.length > 1 ? words[words.length - 1][0] : "")).toUpperCase();
}

function colorOf(text) {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360} 45% 50%)`;
}

function paintAvatar(el, chatId) {
  const label = nameOf(chatId) || numberOf(chatId);
  el.textContent = initials(label);
  el.style.background = colorOf(chatId);
}

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function dayOf(ms) {
  const date = new Date(ms);
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86400000);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString([], { day: "numeric", month: "long", year: "numeric" });
}

function listTime(ms) {
  if (!ms) return "";
  return dayOf(ms) === "Today" ? timeOf(ms) : new Date(ms).toLocaleDateString();
}

// WhatsApp's formatting, as DOM nodes: *bold*, _italic_, ~strike~, `code`, ```monospace```
// blocks, and links. WhatsApp's boundary rules: an opening marker stands at the start or after a
// character that is not a letter or digit, and touches text on its inside; a closing marker
// touches text on its inside and is followed by the end or a character that is not a letter or
// digit; neither crosses a line. So "*/30 9-17 * * 1-5" and "2*3*4" stay as typed.
const STYLES = { "*": "strong", _: "em", "~": "s", "`": "code" };
const WORD = /[\p{L}\p{N}]/u;
const SPACE = /\s/u;
const URL_AT = /^https?:\/\/[^\s<]+/;
const BLOCK = /```([\s\S]*?\S[\s\S]*?)```/g;

function canOpen(text, i) {
  return (i === 0 || !WORD.test(text[i - 1])) && i + 1 < text.length && !SPACE.test(text[i + 1]);
}

function closing(text, open) {
  const mark = text[open];
  for (let j = open + 2; j < text.length; j++) {
    if (text[j] === "\n") return -1;
    if (text[j] === mark && !SPACE.test(text[j - 1]) && (j + 1 === text.length || !WORD.test(text[j + 1]))) {
      return j;
    }
  }
  return -1;
}

function link(url) {
  const node = document.createElement("a");
  node.href = url;
  node.target = "_blank";
  node.rel = "noopener noreferrer";
  node.textContent = url;
  return node;
}

function inline(text, into) {
  let plain = "";
  let i = 0;
  while (i < text.length) {
    const url = (i === 0 || !WORD.test(text[i - 1])) && text.startsWith("http", i) ? text.slice(i).match(URL_AT) : null;
    if (url) {
      into.append(plain, link(url[0]));
      plain = "";
      i += url[0].length;
      continue;
    }
    const style = STYLES[text[i]];
    const end = style && canOpen(text, i) ? closing(text, i) : -1;
    if (end < 0) {
      plain += text[i];
      i += 1;
      continue;
    }
    const node = document.createElement(style);
    const inner = text.slice(i + 1, end);
    if (style === "code") node.textContent = inner;
    else inline(inner, node);
    into.append(plain, node);
    plain = "";
    i = end + 1;
  }
  into.append(plain);
}

function formatted(text) {
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const match of text.matchAll(BLOCK)) {
    inline(text.slice(at, match.index), fragment);
    const block = document.createElement("code");
    block.className = "block";
    block.textContent = match[1].replace(/^\n/, "").replace(/\n$/, "");  // fences on their own lines
    fragment.append(block);
    at = match.index + match[0].length;
  }
  inline(text.slice(at), fragment);
  return fragment;
}

// ------------------------------------------------------------------ chat list

function upsertChat(message) {
  const chat = state.chats.get(message.chatId) || { chatId: message.chatId, messageCount: 0, unread: 0 };
  chat.lastMessage = message.body || (message.media ? `[${message.media.kind}]` : "");
  chat.lastActivity = Math.max(chat.lastActivity || 0, message.timestamp);
  chat.messageCount += 1;
  if (!message.fromMe && message.fromName) chat.name = message.fromName;
  if (message.chatId !== state.current && message.fromMe) chat.unread = (chat.unread || 0) + 1;
  state.chats.set(message.chatId, chat);
  renderChats();
}

// ------------------------------------------------------------------ the assistant's state

// Who a chat is to the assistant, as the engine's access rules say (owner, approved contact,
// stranger, and a stranger whose pairing code an owner has not approved yet).
const ROLES = {
  owner: "owner", contact: "approved contact", stranger: "stranger",
  pairing: "stranger, waiting for pairing", group: "group", "ignored-group": "group, not allowed",
};

function roleOf(chatId) {
  const person = state.people.get(chatId);
  if (!person) return null;
  const kind = person.kind === "stranger" && person.pairingUntil ? "pairing" : person.kind;
  return { kind, text: ROLES[kind] || kind };
}

function sinceOf(ms) {
  if (!ms) return "";
  const day = dayOf(ms);
  return day === "Today" ? timeOf(ms) : `${new Date(ms).toLocaleDateString([], { day: "numeric", month: "short" })} ${timeOf(ms)}`;
}

// The model's state in the header: free text needs it, commands do not.
function renderModel() {
  const model = state.model;
  const badge = $("model-state");
  const input = $("message-input");
  badge.dataset.state = model ? model.state : "unknown";
  if (!model || model.state === "unknown") {
    badge.textContent = "model state unknown — no engine running";
    badge.title = "No engine worker has reported lately; messages wait until one runs.";
    input.placeholder = "Type a message";
  } else if (model.state === "answering") {
    badge.textContent = `model online since ${sinceOf(model.since)}`;
    badge.title = `${model.name} answers`;
    input.placeholder = "Type a message";
  } else {
    badge.textContent = `model offline — commands only, since ${sinceOf(model.since)}`;
    badge.title = `${model.name}: ${model.problem || "not reachable"}`;
    input.placeholder = "The model is offline: commands like /help still work";
  }
}

let assistantTimer = null;

async function loadAssistant() {
  clearTimeout(assistantTimer);
  assistantTimer = setTimeout(loadAssistant, 10000);
  try {
    const data = await api("/api/local/assistant");
    state.model = data.model;
    state.people = new Map(data.people.map((p) => [p.chatId, p]));
  } catch (_) {
    return;  // the gateway is away: the stream's reconnect shows it; keep what we had
  }
  renderModel();
  renderChats();
  renderHeader();
}

// A message may change who a chat is (a stranger asked, an owner paired): look again soon.
function assistantSoon() {
  clearTimeout(assistantTimer);
  assistantTimer = setTimeout(loadAssistant, 300);
}

// The open chat's header: the name typed here, else the one the chat list or the history knows
// (after a reload or a deep link nothing was typed in this page), else the number.
function renderHeader() {
  const chatId = state.current;
  if (!chatId) return;
  $("chat-name").textContent = nameOf(chatId) || displayNumber(chatId);
  const role = roleOf(chatId);
  $("chat-number").textContent = `${displayNumber(chatId)} · ${role ? role.text : "chatting with ASPRI"}`;
  paintAvatar($("chat-avatar"), chatId);
}

function learnName(chatId, messages) {
  const named = messages.find((m) => !m.fromMe && m.fromName);  // newest first
  if (named) state.learned.set(chatId, named.fromName);
}

function renderChats() {
  const filter = $("filter").value.trim().toLowerCase();
  const list = $("chat-list");
  list.replaceChildren();
  const chats = [...state.chats.values()].sort((a, b) => (b.lastActivity || 0) - (a.lastActivity || 0));
  for (const chat of chats) {
    const label = nameOf(chat.chatId) || displayNumber(chat.chatId);
    if (filter && !label.toLowerCase().includes(filter) && !chat.chatId.includes(filter)) continue;
    const item = document.createElement("li");
    item.className = "chat-item" + (chat.chatId === state.current ? " active" : "") + (chat.unread ? " unread" : "");
    item.dataset.chatId = chat.chatId;
    const avatar = document.createElement("div");
    avatar.className = "avatar";
    paintAvatar(avatar, chat.chatId);
    const lines = document.createElement("div");
    lines.className = "lines";
    const top = document.createElement("div");
    top.className = "row";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = listTime(chat.lastActivity);
    top.append(name);
    const role = roleOf(chat.chatId);
    if (role) {
      const tag = document.createElement("span");
      tag.className = `tag ${role.kind}`;
      tag.textContent = role.text;
      top.append(tag);
    }
    top.append(time);
    const bottom = document.createElement("div");
    bottom.className = "row";
    const preview = document.createElement("span");
    preview.className = "preview";
    preview.textContent = chat.lastMessage || "";
    bottom.append(preview);
    if (chat.unread) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = chat.unread;
      bottom.append(badge);
    }
    lines.append(top, bottom);
    item.append(avatar, lines);
    item.addEventListener("click", () => openChat(chat.chatId));
    list.append(item);
  }
}

async function loadChats() {
  const chats = await api("/api/chats?limit=500");
  const unread = new Map([...state.chats].map(([id, c]) => [id, c.unread || 0]));
  state.chats = new Map(chats.map((c) => [c.chatId, { ...c, unread: unread.get(c.chatId) || 0 }]));
  renderChats();
  renderHeader();
}

// ------------------------------------------------------------------ messages

// A voice note or audio the message carries, as a player of the stored file (a spoken reply
// keeps its text below the player).
function audioOf(message) {
  const media = message.media;
  if (!media || !message.mediaUrl || (media.kind !== "voice" && media.kind !== "audio")) return null;
  const audio = document.createElement("audio");
  audio.className = "voice";
  audio.controls = true;
  audio.preload = "metadata";
  audio.src = message.mediaUrl;
  return audio;
}

// A reply quoting the message it answers (REPLY_QUOTE) shows that message above its text, as
// WhatsApp does: who wrote it and its first lines.
const QUOTE_CHARS = 200;

function remember(message) {
  if (!message.id) return;
  const media = message.media ? `[${message.media.kind}] ` : "";
  state.texts.set(message.id, { body: media + (message.body || ""), fromMe: message.fromMe });
}

function quoteFor(message) {
  if (!message.quotedMessageId) return null;
  const quoted = state.texts.get(message.quotedMessageId);
  const block = document.createElement("div");
  block.className = "quote";
  block.dataset.quoted = message.quotedMessageId;
  const author = document.createElement("span");
  author.className = "quote-author";
  author.textContent = quoted ? (quoted.fromMe ? "ASPRI" : "You") : "Quoted";
  const text = document.createElement("span");
  text.className = "quote-text";
  const body = quoted ? quoted.body.trim() : "an earlier message";
  text.textContent = body.length > QUOTE_CHARS ? `${body.slice(0, QUOTE_CHARS)}…` : body;
  block.append(author, text);
  return block;
}

// A stored photo, video or document, behind the page's session cookie like the rest of the API:
// a photo as its thumbnail (opening full size), a video as a player, a document as a link.
function fileOf(message) {
  const media = message.media;
  if (!media || !message.mediaUrl) return null;
  if (media.kind === "image" || media.kind === "sticker") {
    const open = document.createElement("a");
    open.href = message.mediaUrl;
    open.target = "_blank";
    open.rel = "noopener";
    const img = document.createElement("img");
    img.className = "photo";
    img.src = message.mediaUrl;
    img.alt = media.caption || "photo";
    img.loading = "lazy";
    open.append(img);
    return open;
  }
  if (media.kind === "video") {
    const video = document.createElement("video");
    video.className = "clip";
    video.controls = true;
    video.preload = "metadata";
    video.src = message.mediaUrl;
    return video;
  }
  if (media.kind === "document") {
    const link = document.createElement("a");
    link.className = "file";
    link.href = message.mediaUrl;
    link.download = media.filename || "document";
    const kb = Math.max(1, Math.round((media.size || 0) / 1024));
    link.textContent = `${media.filename || "document"} · ${kb} KB`;
    return link;
  }
  return null;
}

function transcriptOf(message) {
  const media = message.media;
  if (!media || !media.transcript) return null;
  const line = document.createElement("span");
  line.className = "transcript";
  line.textContent = `“${media.transcript}”`;
  return line;
}

function bubbleFor(message, pending = false) {
  // In this page you are the contact: your messages go right, ASPRI's (fromMe) go left.
  const side = message.fromMe ? "in" : "out";
  const row = document.createElement("div");
  row.className = `row-msg ${side}`;
  row.dataset.eventId = message.eventId || "";
  if (message.fromMe && message.id && !message.id.startsWith("failed:")) {
    row.dataset.messageId = message.id;
  }
  const bubble = document.createElement("div");
  bubble.className = `bubble ${side}` + (pending ? " pending" : "");
  remember(message);
  const quote = quoteFor(message);
  if (quote) bubble.append(quote);
  const player = audioOf(message);
  if (player) bubble.append(player);
  const file = fileOf(message);
  if (file) bubble.append(file);
  const transcript = transcriptOf(message);
  if (transcript) bubble.append(transcript);
  bubble.append(formatted(message.body));
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = timeOf(message.timestamp);
  if (side === "out") {
    const ticks = document.createElement("span");
    ticks.className = "ticks";
    ticks.textContent = "✓✓";
    meta.append(ticks);
  } else if (message.fromMe) {
    meta.append(tickFor(message));  // ticks.js: the assistant's message's delivery status
  }
  bubble.append(meta);
  row.append(bubble);
  return { row, side };
}

function dayDivider(label) {
  const div = document.createElement("div");
  div.className = "day";
  const span = document.createElement("span");
  span.textContent = label;
  div.append(span);
  return div;
}

function appendMessage(message) {
  if (message.eventId && state.shown.has(message.eventId)) return;
  if (message.eventId) state.shown.add(message.eventId);
  const box = $("messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  const list = $("message-list");
  const day = dayOf(message.timestamp);
  if (day !== state.lastDay) {
    list.append(dayDivider(day));
    state.lastDay = day;
    state.lastSide = null;
  }
  const { row, side } = bubbleFor(message);
  if (side !== state.lastSide) row.classList.add("first");
  state.lastSide = side;
  list.append(row);
  if (nearBottom || !message.fromMe) box.scrollTop = box.scrollHeight;
  if (message.fromMe) acknowledgeOpenChat(message.chatId);
}

function renderHistory(messages, { prepend }) {
  // messages: oldest first
  const list = $("message-list");
  const fragment = document.createDocumentFragment();
  let lastDay = null;
  let lastSide = null;
  for (const message of messages) {
    if (message.eventId && state.shown.has(message.eventId)) continue;
    if (message.eventId) state.shown.add(message.eventId);
    const day = dayOf(message.timestamp);
    if (day !== lastDay) { fragment.append(dayDivider(day)); lastDay = day; lastSide = null; }
    const { row, side } = bubbleFor(message);
    if (side !== lastSide) row.classList.add("first");
    lastSide = side;
    fragment.append(row);
  }
  if (prepend) {
    const box = $("messages");
    const before = box.scrollHeight;
    list.prepend(fragment);
    box.scrollTop = box.scrollHeight - before;
  } else {
    list.append(fragment);
    state.lastDay = lastDay;
    state.lastSide = lastSide;
  }
}

async function loadHistory() {
  const chatId = state.current;
  let page = { messages: [], nextBefore: null };
  try {
    page = await api(`/api/messages/${encodeURIComponent(chatId)}?limit=50`);
  } catch (error) {
    if (error.status !== 404) throw error; // 404: nothing said in this chat yet
  }
  if (chatId !== state.current) return;
  learnName(chatId, page.messages);
  renderHeader();
  state.shown.clear();
  state.lastDay = null;
  state.lastSide = null;
  $("message-list").replaceChildren();
  renderHistory([...page.messages].reverse(), { prepend: false });
  // A message that arrived live while this page of history was on its way is not in it.
  state.live.forEach(appendMessage);
  state.nextBefore = page.nextBefore;
  $("older").hidden = !page.nextBefore;
  $("messages").scrollTop = $("messages").scrollHeight;
  acknowledgeOpenChat(chatId);
}

async function loadOlder() {
  if (!state.nextBefore || state.loadingOlder) return;
  const chatId = state.current;
  state.loadingOlder = true;
  try {
    const page = await api(`/api/messages/${encodeURIComponent(chatId)}?limit=50&before=${state.nextBefore}`);
    if (chatId !== state.current) return;
    renderHistory([...page.messages].reverse(), { prepend: true });
    state.nextBefore = page.nextBefore;
    $("older").hidden = !page.nextBefore;
  } finally {
    state.loadingOlder = false;
  }
}

async function openChat(chatId, name) {
  if (name) {
    state.names[chatId] = name;
    localStorage.setItem(NAMES_KEY, JSON.stringify(state.names));
  }
  state.current = chatId;
  state.live = [];
  history.replaceState(null, "", `#${encodeURIComponent(chatId)}`);
  const chat = state.chats.get(chatId);
  if (chat) chat.unread = 0;
  document.querySelector(".app").classList.add("chatting");
  $("empty").hidden = true;
  $("chat").hidden = false;
  renderHeader();
  $("send-error").hidden = true;
  renderChats();
  renderTyping();
  await loadHistory();
  $("message-input").focus();
}

async function send() {
  const input = $("message-input");
  const text = input.value;
  if (!text.trim() || !state.current) return;
  const chatId = state.current;
  input.value = "";
  autosize();
  try {
    const accepted = await api("/api/local/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ from: chatId, name: state.names[chatId] || undefined, text }),
    });
    const message = {
      eventId: accepted.eventId, chatId: accepted.chatId, body: text, fromMe: false,
      fromName: state.names[chatId] || null, timestamp: Date.now(),
    };
    if (accepted.chatId === state.current) appendMessage(message);
    $("send-error").hidden = true;
  } catch (error) {
    input.value = text;
    autosize();
    $("send-error").textContent = `Not sent: ${error.message}`;
    $("send-error").hidden = false;
  }
}

// ------------------------------------------------------------------ attachments

// A file or a recorded voice note goes to the gateway (POST /api/local/media), which stores it
// as every engine stores media and records the message; it comes back on the live stream.
async function upload(file, { voice = false } = {}) {
  const chatId = state.current;
  if (!chatId) return;
  const input = $("message-input");
  const caption = voice ? "" : input.value.trim();
  const form = new FormData();
  form.append("from", chatId);
  if (state.names[chatId]) form.append("name", state.names[chatId]);
  if (caption) form.append("caption", caption);
  if (voice) form.append("voice", "true");
  form.append("file", file, file.name);
  try {
    await api("/api/local/media", { method: "POST", body: form });
    if (caption) { input.value = ""; autosize(); }
    $("send-error").hidden = true;
  } catch (error) {
    $("send-error").textContent = `Not sent: ${error.message}`;
    $("send-error").hidden = false;
  }
}

let recorder = null;

async function toggleRecording() {
  if (recorder) { recorder.stop(); return; }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    $("send-error").textContent = `Microphone: ${error.message || "not available"}`;
    $("send-error").hidden = false;
    return;
  }
  const wanted = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/webm"];
  const mimeType = wanted.find((type) => MediaRecorder.isTypeSupported(type)) || "";
  const chunks = [];
  const current = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const line = $("recording");
  const began = Date.now();
  let bytes = 0;
  recorder = current;
  current.ondataavailable = (event) => {
    if (!event.data.size) return;
    chunks.push(event.data);
    bytes += event.data.size;
    line.dataset.bytes = String(bytes);
    const seconds = Math.floor((Date.now() - began) / 1000);
    line.textContent = `Recording a voice note (${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")})… tap the microphone again to send it`;
  };
  current.onstop = () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    $("record-button").classList.remove("recording");
    $("recording").hidden = true;
    const type = (current.mimeType || mimeType || "audio/webm").split(";")[0];
    const note = new File(chunks, type === "audio/ogg" ? "voice-note.ogg" : "voice-note.webm", { type });
    if (note.size) upload(note, { voice: true });
    else {
      $("send-error").textContent = "Not sent: nothing was recorded";
      $("send-error").hidden = false;
    }
  };
  line.dataset.bytes = "0";
  current.start(250);
  $("record-button").classList.add("recording");
  $("recording").hidden = false;
}

// ------------------------------------------------------------------ typing

// The assistant works on a reply: "typing…" under the messages until the reply arrives, or
// until the signal expires without being repeated (a turn that failed).
function renderTyping() {
  const shown = state.typing.has(state.current);
  const line = $("typing");
  if (line.hidden === !shown) return;
  const box = $("messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  line.hidden = !shown;
  if (shown && nearBottom) box.scrollTop = box.scrollHeight;
}

function typingStarted(signal) {
  clearTimeout(state.typing.get(signal.chatId));
  state.typing.set(signal.chatId, setTimeout(() => typingStopped(signal.chatId), signal.expiresInMs));
  renderTyping();
}

function typingStopped(chatId) {
  clearTimeout(state.typing.get(chatId));
  state.typing.delete(chatId);
  renderTyping();
}

// ------------------------------------------------------------------ live updates

function connect() {
  const source = new EventSource("/api/local/events");
  const status = $("connection");
  source.onopen = async () => {
    status.dataset.state = "online";
    status.textContent = "connected";
    // (Re)connected: whatever happened meanwhile is in the log.
    await loadChats();
    await loadAssistant();
    if (state.current) await loadHistory();
  };
  source.onerror = () => {
    status.dataset.state = "offline";
    status.textContent = "reconnecting…";
  };
  source.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    upsertChat(message);
    if (message.fromMe) typingStopped(message.chatId);
    remember(message);  // the page drew the person's own message before it had an id
    if (message.chatId === state.current) {
      state.live = [...state.live.slice(-49), message];
      appendMessage(message);
    } else if (message.fromMe) acknowledge(message.chatId, [message.id], "delivered");
    assistantSoon();
  });
  source.addEventListener("status", (event) => {
    const update = JSON.parse(event.data);
    for (const message of state.live) {
      if (message.id === update.messageId) Object.assign(message, { status: update.status, statusError: update.statusError });
    }
    moveTick(update);
  });
  source.addEventListener("typing", (event) => typingStarted(JSON.parse(event.data)));
}

// ------------------------------------------------------------------ wiring

function autosize() {
  const input = $("message-input");
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, 140) + "px";
  $("send-button").disabled = !input.value.trim();
}

$("new-chat").addEventListener("submit", (event) => {
  event.preventDefault();
  const chatId = chatIdOf($("new-number").value);
  if (!chatId) {
    $("new-chat-error").textContent = "Type a phone number with its country code, e.g. +62 812 3456 7890.";
    return;
  }
  $("new-chat-error").textContent = "";
  const name = $("new-name").value.trim();
  if (!state.chats.has(chatId)) {
    state.chats.set(chatId, { chatId, name: name || null, lastActivity: Date.now(), messageCount: 0, unread: 0 });
  }
  $("new-number").value = "";
  $("new-name").value = "";
  openChat(chatId, name);
});

$("composer").addEventListener("submit", (event) => { event.preventDefault(); send(); });
$("attach-button").addEventListener("click", () => $("attach-input").click());
$("attach-input").addEventListener("change", () => {
  const [file] = $("attach-input").files;
  $("attach-input").value = "";
  if (file) upload(file);
});
$("record-button").addEventListener("click", toggleRecording);
$("message-input").addEventListener("input", autosize);
$("message-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
$("filter").addEventListener("input", renderChats);
$("older").addEventListener("click", loadOlder);
$("messages").addEventListener("scroll", () => {
  if ($("messages").scrollTop < 40 && state.nextBefore) loadOlder();
});

// A deep link (#<chatId>) opens that chat, on load and when pasted into an open page.
function openLinked() {
  const chatId = decodeURIComponent(location.hash.slice(1));
  if (chatId && chatId !== state.current) openChat(chatId);
}
window.addEventListener("hashchange", openLinked);
document.addEventListener("visibilitychange", () => {
  if (state.current && document.visibilityState === "visible") acknowledgeOpenChat(state.current);
});

connect();
openLinked();
