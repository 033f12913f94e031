// ASPRI's bridge between WhatsApp Web and the Python driver (aspri/api/whatsapp/engines/browser.py).
//
// It uses only wa-js's public surface (window.WPP, @wppconnect/wa-js 4.x): WPP.isReady,
// WPP.loader.onReady, WPP.on (conn.* events, chat.new_message, chat.new_reaction,
// chat.msg_ack_change),
// WPP.conn.isAuthenticated / isMainReady / getAuthCode / refreshQR / getMyUserId,
// WPP.chat.sendTextMessage / sendFileMessage / getQuotedMsgKey / downloadMedia / markIsRead / markIsComposing /
// markIsPaused, WPP.contact.getPnLidEntry. It reports to Python through two
// bindings the driver exposes: __aspriState({state, qr}), __aspriInbound(message) and
// __aspriAck({messageId, chatId, ack, sender}). Evaluated
// after every page load; a second evaluation in the same document does nothing.
(() => {
  if (window.__aspri) return false;

  const report = (state, qr) => {
    window.__aspriState({ state, qr: qr || null }).catch(() => {});
  };

  const wid = (w) => {
    if (w === undefined || w === null) return null;
    if (typeof w === "string") return w;
    return w._serialized || String(w);
  };

  const quotedId = (msg) => {
    if (!msg.quotedStanzaID) return null;
    try {
      return wid(WPP.chat.getQuotedMsgKey(msg));
    } catch (err) {
      return null;
    }
  };

  // The linked account's own chat id ("Message yourself"), once logged in.
  const me = () => {
    try {
      return wid(WPP.conn.getMyUserId());
    } catch (err) {
      return null;
    }
  };

  // Texts __aspri.send is sending, by chat: WhatsApp Web shows one's own sends as new messages
  // (before the send resolves), and in the self chat they must not look like the owner typing.
  const sending = new Set();
  const isOwnSend = (chatId, body) => {
    for (const entry of sending) {
      if (entry.chatId === chatId && entry.text === body) {
        sending.delete(entry);
        return true;
      }
    }
    return false;
  };

  // What a message carries besides text, for browser_media.PageMedia: a file is described (its
  // bytes are fetched later, on the driver's request), anything small is taken whole.
  const FILES = new Set(["image", "video", "audio", "ptt", "document", "sticker"]);
  const describe = (msg) => {
    const type = msg.type || "chat";
    if (type === "chat") return null;
    if (FILES.has(type)) {
      return {
        type,
        mimetype: msg.mimetype || null,
        filename: msg.filename || null,
        size: Number(msg.size) || 0,
        caption: msg.caption || null,
      };
    }
    if (type === "location") return { type, lat: msg.lat, lng: msg.lng, loc: msg.loc || null };
    if (type === "vcard") return { type, vcards: [msg.body || ""] };
    if (type === "multi_vcard") return { type, vcards: (msg.vcardList || []).map((v) => v.vcard || "") };
    if (type === "buttons_response" || type === "list_response" || type === "template_button_reply") {
      const row = msg.listResponse && msg.listResponse.singleSelectReply;
      return {
        type,
        replyId: msg.selectedButtonId || (row && row.selectedRowId) || msg.selectedId || null,
        title: msg.body || "",
      };
    }
    return { type };
  };

  // The fields of aspri.schemas.WhatsAppMessage, plus two flags the driver filters on. What the
  // linked account writes in its own chat ("Message yourself") is the owner talking to the
  // assistant: an inbound message with selfChat set, not one of the account's own messages.
  const toMessage = (msg) => {
    const chatId = wid(msg.id.remote) || wid(msg.from);
    const isGroup = Boolean(msg.isGroupMsg);
    // A media message's body holds its thumbnail (a vCard its card); its text is the caption.
    const body = (msg.type === "chat" ? msg.body : msg.caption) || "";
    const fromMe = Boolean(msg.id.fromMe);
    const selfChat = !isGroup && fromMe && chatId === me() && !isOwnSend(chatId, body);
    return {
      id: wid(msg.id),
      chatId,
      from: wid(isGroup ? msg.author || msg.from : msg.from),
      fromName: msg.notifyName || (msg.senderObj && msg.senderObj.pushname) || null,
      body,
      type: msg.type || "chat",
      timestamp: msg.t || 0,
      isGroup,
      fromMe: fromMe && !selfChat,
      selfChat,
      media: describe(msg),
      quotedMessageId: quotedId(msg),
      isStatus: Boolean(msg.isStatusV3) || chatId === "status@broadcast",
      isNotification: Boolean(msg.isNotification),
    };
  };

  const toReaction = (reaction) => {
    const chatId = wid(reaction.msgId.remote);
    const fromMe = Boolean(reaction.id && reaction.id.fromMe);
    return {
      id: wid(reaction.id),
      chatId,
      from: wid(reaction.sender),
      body: "",
      type: "reaction",
      timestamp: reaction.timestamp || 0,
      isGroup: chatId.endsWith("@g.us"),
      fromMe,
      media: { type: "reaction", messageId: wid(reaction.msgId), emoji: reaction.reactionText || "" },
    };
  };

  // Files being handed to the driver, by token: downloaded once, read in chunks, then released.
  const downloads = new Map();
  let downloaded = 0;
  const base64Of = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  };

  const refresh = async () => {
    try {
      if (WPP.conn.isAuthenticated()) {
        report(WPP.conn.isMainReady() ? "working" : "starting");
        return;
      }
      const code = await WPP.conn.getAuthCode();
      report(code ? "scan_qr" : "starting", code && code.fullCode);
    } catch (err) {
      console.error("aspri bridge: state refresh failed", err);
    }
  };

  const attach = () => {
    WPP.on("conn.auth_code_change", (code) => {
      if (code) report("scan_qr", code.fullCode);
      else refresh();
    });
    // Nobody clicks "reload QR" in a headless browser: keep a fresh code until it is scanned.
    WPP.on("conn.qrcode_idle", () => WPP.conn.refreshQR());
    for (const name of ["conn.authenticated", "conn.main_ready", "conn.logout", "conn.require_auth"]) {
      WPP.on(name, refresh);
    }
    WPP.on("chat.new_message", (msg) => {
      let message;
      try {
        message = toMessage(msg);
      } catch (err) {
        console.error("aspri bridge: unreadable message", err);
        return;
      }
      window.__aspriInbound(message).catch(() => {});
    });
    // Acks of the account's own messages: 1 the server has it, 2 delivered, 3 read, 4 played,
    // -1 failed (wa-js reports a batch of message ids per ack).
    WPP.on("chat.msg_ack_change", (change) => {
      try {
        for (const key of change.ids || []) {
          if (!key.fromMe) continue;
          window
            .__aspriAck({
              messageId: wid(key),
              chatId: wid(change.chat),
              ack: change.ack,
              sender: wid(change.sender),
            })
            .catch(() => {});
        }
      } catch (err) {
        console.error("aspri bridge: unreadable ack", err);
      }
    });
    // A reaction is no message in WhatsApp Web: it is recorded as one of type "reaction".
    WPP.on("chat.new_reaction", (reaction) => {
      let message;
      try {
        message = toReaction(reaction);
      } catch (err) {
        console.error("aspri bridge: unreadable reaction", err);
        return;
      }
      window.__aspriInbound(message).catch(() => {});
    });
    refresh();
  };

  // A chat WhatsApp Web may keep under the person's hidden linked id: the presence functions
  // need the chat it has, so the @lid is tried when the phone's id is not found.
  const inChat = async (chatId, action) => {
    try {
      return await action(chatId);
    } catch (err) {
      const entry = await WPP.contact.getPnLidEntry(chatId).catch(() => null);
      const lid = entry && entry.lid && entry.lid._serialized;
      if (!lid || lid === chatId) throw err;
      return action(lid);
    }
  };

  // A chat not open yet (a reminder to someone new) is created, as the phone would; a number
  // not on WhatsApp is then wa-js's "chat_not_found".
  const SEND_OPTIONS = { createChat: true, waitForAck: true };
  // wa-js's errors carry a code (invalid_wid, chat_not_found, ...): keep it in the message, so
  // the driver can tell a refusal for good from one worth retrying.
  const withCode = (err) => {
    throw new Error(err && err.code ? `${err.code}: ${err.message}` : String((err && err.message) || err));
  };

  // Resolves to the new message's id; rejects when WhatsApp refuses it.
  const sendText = async (chatId, text, options) => {
    const entry = { chatId, text };
    sending.add(entry);
    // The reply ends "typing…" (and its timer); a chat never marked composing is no error.
    await inChat(chatId, (id) => WPP.chat.markIsPaused(id)).catch(() => {});
    try {
      const sent = await WPP.chat.sendTextMessage(chatId, text, options).catch(withCode);
      const result = await sent.sendMsgResult;
      const outcome = result && result.messageSendResult;
      if (outcome && outcome !== "OK") throw new Error(`WhatsApp refused the message: ${outcome}`);
      return wid(sent.id);
    } finally {
      sending.delete(entry); // its echo may never come: forget it either way
    }
  };
  // wa-js's refusals of a quote, raised before anything is sent.
  const UNQUOTABLE = ["msg_not_found", "invalid_quoted_msg", "quoted_msg_can_not_reply"];

  window.__aspri = {
    // The assistant works on this chat: its messages show read, and "typing…" shows until the
    // reply (send pauses it) or for `ms` without a refresh (wa-js then marks it paused).
    working: async (chatId, ms) => {
      await inChat(chatId, (id) => WPP.chat.markIsRead(id));
      await inChat(chatId, (id) => WPP.chat.markIsComposing(id, ms));
    },
    // The phone's chat id (…@c.us) of a hidden linked id (…@lid), when WhatsApp Web knows it.
    phoneOf: async (id) => {
      try {
        const entry = await WPP.contact.getPnLidEntry(id);
        return (entry && entry.phoneNumber && entry.phoneNumber._serialized) || null;
      } catch (err) {
        return null;
      }
    },
    // Fetches a message's file through wa-js (which decrypts it); a file over `cap` bytes is
    // refused before anything is handed over.
    download: async (id, cap) => {
      const blob = await WPP.chat.downloadMedia(id);
      if (blob.size > cap) return { size: blob.size, tooLarge: true };
      downloaded += 1;
      const token = `d${downloaded}`;
      downloads.set(token, blob);
      return { token, size: blob.size, mime: blob.type || null };
    },
    chunk: async (token, offset, length) => {
      const blob = downloads.get(token);
      if (!blob) throw new Error(`no download ${token}`);
      return base64Of(await blob.slice(offset, offset + length).arrayBuffer());
    },
    release: (token) => {
      downloads.delete(token);
    },
    // A voice note (an OGG/Opus data URL), as WhatsApp's own recorder sends it; its echo in the
    // self chat shows the file name as its text, which marks it as the assistant's own.
    sendVoice: async (chatId, url) => {
      const filename = "voice-note.ogg";
      const entry = { chatId, text: filename };
      sending.add(entry);
      await inChat(chatId, (id) => WPP.chat.markIsPaused(id)).catch(() => {});
      try {
        const sent = await WPP.chat
          .sendFileMessage(chatId, url, { type: "audio", isPtt: true, filename, ...SEND_OPTIONS })
          .catch(withCode);
        const result = await sent.sendMsgResult;
        const outcome = result && result.messageSendResult;
        if (outcome && outcome !== "OK") throw new Error(`WhatsApp refused the message: ${outcome}`);
        return wid(sent.id);
      } finally {
        sending.delete(entry);
      }
    },
    // Resolves to the new message's id; rejects when WhatsApp refuses it.
    send: (chatId, text) => sendText(chatId, text, SEND_OPTIONS),
    // The same, quoting the message `quoted` (its serialized id), as a swipe-to-reply does; a
    // message wa-js cannot quote (gone from the chat, not quotable) leaves the reply unquoted.
    sendReply: async (chatId, text, quoted) => {
      try {
        return await sendText(chatId, text, { ...SEND_OPTIONS, quotedMsg: quoted });
      } catch (err) {
        if (!UNQUOTABLE.some((code) => String(err.message).startsWith(`${code}:`))) throw err;
        return sendText(chatId, text, SEND_OPTIONS);
      }
    },
  };

  if (WPP.isReady) attach();
  else WPP.loader.onReady(attach);
  return true;
})();
