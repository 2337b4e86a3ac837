// The listener page: join the session named in the link in a chosen language, show its captions and the speaker's
// notices, change language, keep the connection alive (heartbeats, refresh near the 2-hour limit) and come back
// after a drop.

import {
  addNotice,
  backoffSeconds,
  connect,
  fillLanguages,
  heartbeats,
  loadConfig,
  send,
  setStatus,
  showError,
  showSegment,
  sleep,
  socketUrl,
  waitForMessage,
} from "./console.js";

const $ = (id) => document.getElementById(id);

// Refusals that no retry can change: the page stops reconnecting when a join meets one of them.
const FINAL_REFUSALS = ["SESSION_ENDED", "SESSION_NOT_FOUND", "INVALID_PARAMETERS"];

const state = {
  config: null,
  socket: null,
  sessionId: null,
  language: null,
  connectionId: null,
  joined: false,
  ended: false,
  left: false,
  refreshing: false,
  stopHeartbeats: null,
};

const NOTICES = {
  speakerDisconnected: (m) => `The speaker's connection dropped; the session waits ${m.graceSeconds} s for them.`,
  speakerReconnected: () => "The speaker is back.",
  broadcastPaused: () => "The speaker paused the broadcast.",
  broadcastResumed: () => "The speaker resumed the broadcast.",
  broadcastMuted: () => "The speaker muted the broadcast.",
  broadcastUnmuted: () => "The speaker unmuted the broadcast.",
  volumeChanged: (m) => `The speaker set the volume to ${m.volumeLevel}.`,
  speakerStateChanged: (m) =>
    `The speaker's broadcast is ${m.isPaused ? "paused" : "playing"}, ${m.isMuted ? "muted" : "not muted"}, volume ${m.volume}.`,
};

function showBroadcast(type) {
  const text = {
    broadcastPaused: "Paused by the speaker",
    broadcastMuted: "Muted by the speaker",
    broadcastResumed: "",
    broadcastUnmuted: "",
  }[type];
  if (text !== undefined) $("broadcast-state").textContent = text;
}

function onMessage(message, socket) {
  if (socket !== state.socket) return;
  if (message.type in NOTICES) {
    addNotice(NOTICES[message.type](message));
    showBroadcast(message.type);
    return;
  }
  switch (message.type) {
    case "sessionJoined":
      onJoined(message);
      break;
    case "caption":
      showSegment($("captions"), message, `[${message.sourceLanguage}→${message.targetLanguage}]`);
      break;
    case "languageChanged":
      state.language = message.targetLanguage;
      setStatus(`Listening to ${state.sessionId} in ${message.targetLanguage}.`);
      addNotice(`Language changed to ${message.targetLanguage}.`);
      break;
    case "sessionEnded":
      onEnded(message.reason);
      break;
    case "connectionRefreshRequired":
    case "connectionWarning":
      refresh();
      break;
    case "error":
      showError(message.message);
      break;
    default:
      break;
  }
}

function onJoined(message) {
  state.joined = true;
  state.connectionId = message.connectionId;
  state.language = message.targetLanguage;
  showError("");
  setStatus(`Listening to ${message.sessionId} in ${message.targetLanguage}.`);
  addNotice(`Joined ${message.sessionId} in ${message.targetLanguage} (${message.listenerCount} listening).`);
  $("session-id").readOnly = true;
  $("join").hidden = true;
  $("leave").hidden = false;
  if (!state.stopHeartbeats) state.stopHeartbeats = heartbeats(() => state.socket, state.config.heartbeatSeconds);
}

function onEnded(reason) {
  state.ended = true;
  stopHeartbeats();
  setStatus(`The session ended (${reason}).`);
  addNotice(`The session ended (${reason}).`);
  $("leave").hidden = true;
  $("language").disabled = true;
}

function stopHeartbeats() {
  if (state.stopHeartbeats) state.stopHeartbeats();
  state.stopHeartbeats = null;
}

function onClose(event, socket) {
  if (socket !== state.socket || state.ended || state.left || state.refreshing) return;
  if (!state.joined) {
    setStatus("Disconnected.");
    return;
  }
  reconnect();
}

/** A connection that answers joinSession with sessionJoined, or the refusal's error message. */
async function openAndJoin() {
  const previous = state.socket; // a connection whose join was refused, or one that dropped
  state.socket = null;
  if (previous) previous.close();
  const socket = await connect(socketUrl(state.config), { onMessage, onClose });
  state.socket = socket;
  const reply = waitForMessage(socket, ["sessionJoined", "error"]);
  send(socket, { action: "joinSession", sessionId: state.sessionId, targetLanguage: state.language });
  return reply;
}

async function join(event) {
  event.preventDefault();
  showError("");
  state.sessionId = $("session-id").value.trim();
  state.left = false;
  state.language = $("language").value;
  $("join").disabled = true;
  setStatus(`Joining ${state.sessionId}…`);
  try {
    const reply = await openAndJoin();
    if (reply.type === "error") setStatus("Not joined.");
  } catch (error) {
    showError(error.message);
    setStatus("Not joined.");
  } finally {
    $("join").disabled = false;
  }
}

/** After a drop: a new connection joins again (the old one's row goes with its disconnect). */
async function reconnect() {
  state.joined = false;
  for (let attempt = 0; !state.ended && !state.left; attempt++) {
    setStatus(`Connection lost: reconnecting (attempt ${attempt + 1})…`);
    try {
      const reply = await openAndJoin();
      if (reply.type === "sessionJoined") {
        addNotice("Reconnected.");
        return;
      }
      if (FINAL_REFUSALS.includes(reply.code)) {
        setStatus("The session is no longer available.");
        stopHeartbeats();
        return;
      }
    } catch (error) {
      addNotice(`Reconnecting failed: ${error.message}`);
    }
    await sleep(backoffSeconds(attempt));
  }
}

/** Near API Gateway's 2-hour limit: a new connection takes this listener's place (refreshConnection with the
 * previous connection id, so the count never moves), then the old connection closes. */
async function refresh() {
  if (state.refreshing || state.ended) return;
  state.refreshing = true;
  const old = state.socket;
  try {
    const socket = await connect(
      socketUrl(state.config, {
        action: "refreshConnection",
        sessionId: state.sessionId,
        role: "listener",
        targetLanguage: state.language,
        previousConnectionId: state.connectionId,
      }),
      { onMessage, onClose },
    );
    const complete = await waitForMessage(socket, ["connectionRefreshComplete"]);
    state.connectionId = complete.connectionId;
    state.socket = socket;
    old.close();
    addNotice("Connection refreshed.");
  } catch (error) {
    addNotice(`Refreshing the connection failed: ${error.message}; it will reconnect when it drops.`);
  } finally {
    state.refreshing = false;
  }
}

function changeLanguage() {
  if (!state.joined) return;
  send(state.socket, { action: "changeLanguage", targetLanguage: $("language").value });
}

function leave() {
  const socket = state.socket;
  state.left = true;
  state.socket = null; // its close is not a drop
  state.joined = false;
  stopHeartbeats();
  send(socket, { action: "leaveSession" });
  socket.close();
  $("leave").hidden = true;
  $("join").hidden = false;
  $("session-id").readOnly = false;
  setStatus("You left the session.");
  addNotice("You left the session.");
}

async function main() {
  state.config = await loadConfig();
  const params = new URLSearchParams(location.search);
  $("session-id").value = params.get("session") || "";
  const preferred = params.get("language") || (navigator.language || "").split("-")[0];
  fillLanguages($("language"), state.config.languages, preferred);
  $("join-form").addEventListener("submit", join);
  $("language").addEventListener("change", changeLanguage);
  $("leave").addEventListener("click", leave);
  setStatus($("session-id").value ? "Choose your language and join." : "Enter the session id, choose your language and join.");
}

main().catch((error) => {
  showError(error.message);
  setStatus("The console could not start.");
});
