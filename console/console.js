// What the speaker and listener pages share: the server's configuration, a WebSocket connection that speaks
// the session service's JSON messages, the live transcript/caption list, notices and the page's status line.

/** The local run's /console/config.json: the WebSocket URL, settings and their bounds, languages, audio format. */
export async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: ${response.status}`);
  return response.json();
}

/** A fresh speaker token from the local run's dev issuer (POST /console/dev-token). */
export async function devToken() {
  const response = await fetch("dev-token", { method: "POST" });
  if (!response.ok) throw new Error(`dev-token: ${response.status}`);
  return (await response.json()).token;
}

/** The WebSocket URL with `params` as its query string (empty values left out). */
export function socketUrl(config, params = {}) {
  const url = new URL(config.websocketUrl);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url.toString();
}

/**
 * One WebSocket connection: `onMessage(message)` for every JSON frame, `onClose(event)` once when it closes.
 * Resolves once open; rejects when the handshake is refused (a browser learns no reason for a refusal).
 */
export function connect(url, { onMessage, onClose }) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      resolve(socket);
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      onMessage(message, socket);
    });
    socket.addEventListener("close", (event) => {
      if (!opened) reject(new Error(`the connection was refused (close code ${event.code})`));
      else onClose(event, socket);
    });
  });
}

/** Send one message if the socket is open; false when it is not. */
export function send(socket, message) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

/** Heartbeats every `seconds` while the socket is open; returns the function that stops them. */
export function heartbeats(getSocket, seconds) {
  const timer = setInterval(() => send(getSocket(), { action: "heartbeat" }), seconds * 1000);
  return () => clearInterval(timer);
}

/** Delays between reconnection attempts: 1, 2, 4 … 30 seconds. */
export function backoffSeconds(attempt) {
  return Math.min(30, 2 ** attempt);
}

export const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** The page's status line (role=status): replaced text, announced politely. */
export function setStatus(text) {
  document.getElementById("status").textContent = text;
}

/** The page's error line (role=alert): the server's refusal exactly as it came, or empty. */
export function showError(text) {
  const element = document.getElementById("error");
  element.textContent = text || "";
  element.hidden = !text;
}

/** Add a notice at the top of the notices list (aria-live), with the time it arrived. */
export function addNotice(text) {
  const list = document.getElementById("notices");
  const item = document.createElement("li");
  const time = document.createElement("time");
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString();
  item.append(time, " ", text);
  list.prepend(item);
}

/**
 * Show a transcript or caption segment: a partial replaces the line of its segmentId in place, a final fixes it;
 * a segment not seen before is appended. `label` is an optional prefix (a caption's language pair).
 */
export function showSegment(container, message, label = "") {
  const id = String(message.segmentId);
  let line = [...container.children].find((child) => child.dataset.segmentId === id);
  if (!line) {
    line = document.createElement("p");
    line.dataset.segmentId = id;
    container.append(line);
  }
  if (message.targetLanguage) line.dataset.language = message.targetLanguage;
  line.textContent = label ? `${label} ${message.text}` : message.text;
  line.classList.toggle("partial", Boolean(message.isPartial));
  line.classList.toggle("final", !message.isPartial);
  line.scrollIntoView({ block: "nearest" });
}

const languageNames =
  typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames([navigator.language], { type: "language" }) : null;

/** A language code as the reader's browser names it, with the code: "Spanish (es)" (the code alone without Intl). */
export function languageName(code) {
  return languageNames ? `${languageNames.of(code)} (${code})` : code;
}

/** Fill a <select> with language codes, selecting `selected` when it is one of them. */
export function fillLanguages(select, languages, selected) {
  for (const code of languages) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = languageName(code);
    select.append(option);
  }
  if (languages.includes(selected)) select.value = selected;
}

/** The next message on `socket` whose type is one of `types`; rejects when it closes or `seconds` pass first. */
export function waitForMessage(socket, types, seconds = 30) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.removeEventListener("message", onMessage);
      socket.removeEventListener("close", onClose);
    };
    const onMessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!types.includes(message.type)) return;
      done();
      resolve(message);
    };
    const onClose = () => {
      done();
      reject(new Error("the connection closed"));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no ${types.join(" or ")} within ${seconds} s`));
    }, seconds * 1000);
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", onClose);
  });
}
