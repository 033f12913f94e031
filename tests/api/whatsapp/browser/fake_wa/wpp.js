// A stand-in for wa-js (window.WPP of @wppconnect/wa-js 4.x) on a fake WhatsApp Web page.
//
// Real WhatsApp cannot be reached from a test machine, so the tests serve this page instead.
// It imitates only the surface ASPRI's bridge (aspri/api/whatsapp/engines/browser_bridge.js)
// uses, with the same names and shapes as wa-js: WPP.isReady, WPP.loader.onReady, WPP.on,
// WPP.conn.isAuthenticated / isMainReady / getAuthCode / refreshQR / getMyUserId,
// WPP.chat.sendTextMessage / getQuotedMsgKey / downloadMedia, WPP.contact.getPnLidEntry, the
// chat.new_reaction and chat.msg_ack_change events (as wa-js emits the latter: {ack, chat,
// sender, ids: [MsgKey]}, ack 1 when the server took a message, later 2 delivered / 3 read from
// the "ack" command), sends as wa-js's (quotedMsg included: an unknown message is
// "msg_not_found", raised before anything is sent) (errors with wa-js's codes: "invalid_wid" for an id that
// is none, "chat_not_found" for a chat WhatsApp Web does not have unless createChat is set and
// the server knows the number), WPP.chat.sendFileMessage (a data URL; the file's type and size reach the
// server; the echo's caption is the file name, as wa-js sets it), WPP.chat.markIsRead / markIsComposing / markIsPaused (as wa-js's: they
// need a chat WhatsApp Web has — "chat_not_found" otherwise —, and markIsComposing with a
// duration marks the chat paused when it runs out, unless composing is marked again), and
// message models with MsgKey / Wid ids and wa-js's media fields (mimetype, filename, size, lat,
// lng, loc, vcardList). downloadMedia behaves as wa-js's: it looks the message up by its
// serialized id, rejects a message without media ("message_not_contains_media") and a file
// that cannot be fetched ("media_not_found"), and resolves to a Blob of the decrypted bytes
// typed with the message's mimetype. getPnLidEntry behaves as wa-js's: it accepts only @c.us
// and @lid ids ("invalid_wid" otherwise) and answers from WhatsApp Web's LID/phone cache (here
// filled by the "lid" command) with {lid, phoneNumber, contact}, each part absent when unknown.
// The "WhatsApp server" is the test:
// it pushes commands over server-sent events (/events) and records sends (POST /sent). The
// login is kept in IndexedDB, as WhatsApp Web keeps its session, so it survives a relaunch on
// the same browser profile.
(() => {
  const listeners = {};
  const emit = (name, ...args) => (listeners[name] || []).forEach((fn) => fn(...args));
  const readyCallbacks = [];

  const wid = (serialized) => ({ _serialized: serialized, toString: () => serialized });

  class MsgKey {
    constructor({ id, fromMe, remote, participant }) {
      this.id = id;
      this.fromMe = fromMe;
      this.remote = wid(remote);
      this.participant = participant ? wid(participant) : undefined;
      this._serialized = `${fromMe}_${remote}_${id}` + (participant ? `_${participant}` : "");
    }
    toString() {
      return this._serialized;
    }
  }

  let authenticated = false;
  let mainReady = false;
  let authCode = null;
  let codes = 0;
  const newAuthCode = () => {
    codes += 1;
    return { type: "multidevice", ref: `ref-${codes}`, fullCode: `2@fake-ref-${codes},pubkey,identity,secret` };
  };

  // The session store, in IndexedDB like WhatsApp Web's.
  const store = (mode, action) =>
    new Promise((resolve, reject) => {
      const open = indexedDB.open("fake-wa", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("session");
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const tx = open.result.transaction("session", mode);
        const request = action(tx.objectStore("session"));
        tx.oncomplete = () => resolve(request.result);
        tx.onerror = () => reject(tx.error);
      };
    });

  const login = async () => {
    await store("readwrite", (s) => s.put({ me: "15550000000@c.us" }, "auth"));
    authenticated = true;
    authCode = null;
    emit("conn.auth_code_change", null);
    emit("conn.authenticated");
    mainReady = true;
    emit("conn.main_ready");
  };

  const chats = new Set(); // WhatsApp Web's ChatStore: chats with a message
  const presence = async (chatId, state, more) => {
    if (!chats.has(String(chatId))) throw new Error(`chat_not_found: ${chatId}`);
    await fetch("/presence", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ chatId: String(chatId), state, ...more }),
    });
  };
  const pausedTimers = new Map();
  const wppError = (code, message) => Object.assign(new Error(message), { code });
  // wa-js's assertWid and assertGetChat / assertFindChat (createChat asks the server).
  const chatToSend = async (chatId, options) => {
    const id = String(chatId);
    if (!/@(c\.us|g\.us|lid)$/.test(id)) throw wppError("invalid_wid", `Invalid WID value for ${id}`);
    if (chats.has(id)) return id;
    const known = options && options.createChat && (await fetch(`/exists?chat=${encodeURIComponent(id)}`)).ok;
    if (!known) throw wppError("chat_not_found", `Chat not found for ${id}`);
    chats.add(id);
    return id;
  };
  const lidPn = new Map(); // WhatsApp Web's lidPnCache: …@lid -> …@c.us
  const widInfo = (serialized) => {
    const [id, server] = serialized.split("@");
    return { id, server, _serialized: serialized };
  };
  let sent = 0;
  const messages = new Map(); // serialized id -> model, like WhatsApp Web's MsgStore
  const files = new Map(); // serialized id -> {data (base64) | fail}, the media servers
  const toModel = (raw) => {
    const chat = raw.chatId;
    chats.add(chat);
    const model = {
      id: new MsgKey({ id: raw.id, fromMe: Boolean(raw.fromMe), remote: chat, participant: raw.author }),
      from: wid(raw.fromMe ? "15550000000@c.us" : chat),
      to: wid(raw.fromMe ? chat : "15550000000@c.us"),
      author: raw.author ? wid(raw.author) : undefined,
      notifyName: raw.notifyName,
      body: raw.body,
      caption: raw.caption,
      type: raw.type || "chat",
      t: raw.t,
      isGroupMsg: chat.endsWith("@g.us"),
      isMedia: Boolean(raw.isMedia),
      isNotification: Boolean(raw.isNotification),
      isStatusV3: chat === "status@broadcast",
      isNewMsg: true,
      quotedStanzaID: raw.quotedStanzaID,
      quotedParticipant: raw.quotedParticipant ? wid(raw.quotedParticipant) : undefined,
      mimetype: raw.mimetype,
      filename: raw.filename,
      size: raw.size,
      lat: raw.lat,
      lng: raw.lng,
      loc: raw.loc,
      vcardList: raw.vcardList,
      selectedButtonId: raw.selectedButtonId,
    };
    model.mediaData = raw.isMedia ? { mimetype: raw.mimetype } : undefined;
    messages.set(model.id._serialized, model);
    if (raw.isMedia) files.set(model.id._serialized, { data: raw.data, fail: raw.fail });
    return model;
  };

  const WPP = {
    isReady: false,
    loader: {
      onReady: (listener) => (WPP.isReady ? listener() : readyCallbacks.push(listener)),
    },
    on: (name, fn) => {
      (listeners[name] = listeners[name] || []).push(fn);
    },
    conn: {
      isAuthenticated: () => authenticated,
      isMainReady: () => mainReady,
      getAuthCode: async () => authCode,
      getMyUserId: () => (authenticated ? wid("15550000000@c.us") : undefined),
      refreshQR: async () => {
        authCode = newAuthCode();
        emit("conn.auth_code_change", authCode);
      },
    },
    contact: {
      getPnLidEntry: async (contactId) => {
        const id = String(contactId);
        if (!/@(c\.us|lid)$/.test(id)) throw new Error(`invalid_wid: ${id}`);
        let lid, pn;
        if (id.endsWith("@lid")) {
          lid = id;
          pn = lidPn.get(id);
        } else {
          pn = id;
          lid = [...lidPn].find(([, phone]) => phone === id)?.[0];
        }
        return {
          lid: lid ? widInfo(lid) : undefined,
          phoneNumber: pn ? widInfo(pn) : undefined,
          contact: undefined,
        };
      },
    },
    chat: {
      sendTextMessage: async (chatId, content, options) => {
        await chatToSend(chatId, options);
        // wa-js's quotedMsg: a serialized id looked up in the chat's messages.
        if (options && options.quotedMsg && !messages.has(String(options.quotedMsg))) {
          throw wppError("msg_not_found", `Message ${options.quotedMsg} not found`);
        }
        const response = await fetch("/sent", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ chatId, content, options }),
        });
        const { messageSendResult } = await response.json();
        sent += 1;
        const key = new MsgKey({ id: `3EB0FAKE${sent}`, fromMe: true, remote: chatId });
        // WhatsApp Web shows one's own messages as new messages too.
        emit("chat.new_message", toModel({ id: key.id, chatId, fromMe: true, body: content, t: 1 }));
        if (messageSendResult === "OK") {
          queueMicrotask(() => emit("chat.msg_ack_change", { ack: 1, chat: wid(chatId), ids: [key] }));
        }
        return { id: key.toString(), ack: messageSendResult === "OK" ? 1 : -1, sendMsgResult: { messageSendResult } };
      },
      markIsRead: async (chatId) => {
        await presence(chatId, "read");
        return { wid: wid(String(chatId)), unreadCount: 0 };
      },
      markIsComposing: async (chatId, duration) => {
        await presence(chatId, "composing", { duration });
        clearTimeout(pausedTimers.get(String(chatId)));
        if (duration) {
          pausedTimers.set(String(chatId), setTimeout(() => WPP.chat.markIsPaused(chatId), duration));
        }
      },
      markIsPaused: async (chatId) => {
        await presence(chatId, "paused");
      },
      downloadMedia: async (id) => {
        const msg = messages.get(String(id));
        if (!msg) throw new Error(`msg_not_found: ${id}`);
        if (!msg.mediaData) throw new Error(`message_not_contains_media: ${id}`);
        const file = files.get(String(id));
        if (file.fail) throw new Error(file.fail);
        const binary = atob(file.data || "");
        const bytes = new Uint8Array(binary.length);
        for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
        return new Blob([bytes], { type: msg.mimetype || "application/octet-stream" });
      },
      sendFileMessage: async (chatId, content, options) => {
        await chatToSend(chatId, options);
        const [head, data] = String(content).split(",", 2);
        const mimetype = head.replace(/^data:/, "").replace(/;base64$/, "");
        const size = atob(data || "").length;
        const response = await fetch("/sent", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ chatId, file: { mimetype, size }, options }),
        });
        const { messageSendResult } = await response.json();
        sent += 1;
        const key = new MsgKey({ id: `3EB0FAKE${sent}`, fromMe: true, remote: chatId });
        const type = options.type === "audio" && options.isPtt ? "ptt" : options.type;
        emit(
          "chat.new_message",
          toModel({ id: key.id, chatId, fromMe: true, type, isMedia: true, caption: options.filename, t: 1 })
        );
        if (messageSendResult === "OK") {
          queueMicrotask(() => emit("chat.msg_ack_change", { ack: 1, chat: wid(chatId), ids: [key] }));
        }
        return { id: key.toString(), ack: 0, sendMsgResult: Promise.resolve({ messageSendResult }) };
      },
      getQuotedMsgKey: (msg) => {
        if (!msg.quotedStanzaID) throw new Error("message_not_have_a_reply");
        return new MsgKey({
          id: msg.quotedStanzaID,
          fromMe: false,
          remote: msg.id.remote._serialized,
          participant: msg.isGroupMsg && msg.quotedParticipant ? msg.quotedParticipant._serialized : undefined,
        });
      },
    },
  };
  window.WPP = WPP;

  const commands = {
    login,
    qr_idle: () => emit("conn.qrcode_idle"),
    message: ({ message }) => emit("chat.new_message", toModel(message)),
    ack: ({ ack }) =>
      emit("chat.msg_ack_change", {
        ack: ack.ack,
        chat: wid(ack.chatId),
        sender: ack.sender ? wid(ack.sender) : undefined,
        ids: ack.ids.map((id) => new MsgKey({ id, fromMe: ack.fromMe !== false, remote: ack.chatId })),
      }),
    lid: ({ lid, phone }) => (phone ? lidPn.set(lid, phone) : lidPn.delete(lid)),
    // wa-js's chat.new_reaction: MsgKeys of the reaction and of the message reacted to.
    reaction: ({ reaction }) =>
      emit("chat.new_reaction", {
        id: new MsgKey({ id: reaction.id, fromMe: false, remote: reaction.chatId }),
        msgId: new MsgKey({ id: reaction.to, fromMe: true, remote: reaction.chatId }),
        reactionText: reaction.emoji,
        sender: wid(reaction.sender),
        timestamp: reaction.t,
        read: false,
        orphan: 0,
      }),
  };
  // Like wa-js, configured by window.WPPConfig; the device name reaches WhatsApp's server.
  const config = { deviceName: false, disableGoogleAnalytics: false, ...(window.WPPConfig || {}) };
  const events = new EventSource(`/events?config=${encodeURIComponent(JSON.stringify(config))}`);
  events.onmessage = (event) => {
    const command = JSON.parse(event.data);
    commands[command.cmd](command);
  };

  // Like wa-js, ready once WhatsApp Web's modules (here: the stored session) are loaded.
  store("readonly", (s) => s.get("auth")).then((session) => {
    authenticated = Boolean(session);
    mainReady = authenticated;
    authCode = authenticated ? null : newAuthCode();
    WPP.isReady = true;
    readyCallbacks.splice(0).forEach((fn) => fn());
  });
})();
