// The listener page: join the session named in the link in a chosen language, show its captions and play the
// translation spoken (playback.js), show the speaker's notices, change language and output, pause this listener's
// playback, keep the connection alive (heartbeats, refresh near the 2-hour limit) and come back after a drop.

import {
  addNotice,
  backoffSeconds,
  connect,
  fillLanguages,
  heartbeats,
  languageName,
  loadConfig,
  send,
  setStatus,
  showError,
  showSegment,
  sleep,
  socketUrl,
  waitForMessage,
} from "./console.js";
import { Player } from "./playback.js";

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
  output: "both", // what this listener receives: audio, captions or both (sent at join and by setOutput)
  playbackPaused: false, // this listener's pausePlayback (its own, not the speaker's broadcast)
  unavailableLanguage: null, // the language audioUnavailable named: captions only there
};

const OUTPUT_NAMES = {
  both: "the translation spoken and captions",
  audio: "the translation spoken only",
  captions: "captions only",
};

const player = new Player({ notice: addNotice, onChange: showPlayback });
// What was played, skipped and measured at the output (the browser test reads it)
window.listenerAudio = player.stats;

const NOTICES = {
  speakerDisconnected: (m) => `The speaker's connection dropped; the session waits ${m.graceSeconds} s for them.`,
  speakerReconnected: () => "The speaker is back.",
  broadcastPaused: () => "The speaker paused the broadcast.",
  broadcastResumed: () => "The speaker resumed the broadcast.",
  broadcastMuted: () => "The speaker muted the broadcast.",
  broadcastUnmuted: () => "The speaker unmuted the broadcast.",
  volumeChanged: (m) => `The speaker set the volume to ${m.volumeLevel}.`,
  audioUnavailable: (m) => `No voice speaks ${languageName(m.targetLanguage)}: captions only in that language.`,
  outputSet: (m) => `You now receive ${OUTPUT_NAMES[m.output] || m.output}.`,
  playbackPaused: () => "Your playback is paused: no speech is sent to you until you resume.",
  playbackResumed: () => "Your playback resumed: the speech goes on from the next sentence.",
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
  if (message.type === "audioUnavailable") state.unavailableLanguage = message.targetLanguage;
  if (message.type in NOTICES) {
    addNotice(NOTICES[message.type](message));
    showBroadcast(message.type);
    showPlayback();
    return;
  }
  switch (message.type) {
    case "translatedAudio":
      player.receive(message);
      break;
    case "sessionJoined":
      onJoined(message);
      break;
    case "caption":
      showSegment($("captions"), message, `[${message.sourceLanguage}→${message.targetLanguage}]`);
      break;
    case "languageChanged":
      state.language = message.targetLanguage;
      if (state.unavailableLanguage !== message.targetLanguage) state.unavailableLanguage = null;
      player.setLanguage(message.targetLanguage);
      showPlayback();
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
  player.setLanguage(message.targetLanguage);
  player.setAccepting(wantsAudio());
  // A new connection starts playing: a listener who had paused says so again
  if (state.playbackPaused) send(state.socket, { action: "pausePlayback" });
  showPlayback();
  if (!state.stopHeartbeats) state.stopHeartbeats = heartbeats(() => state.socket, state.config.heartbeatSeconds);
}

function onEnded(reason) {
  state.ended = true;
  stopHeartbeats();
  setStatus(`The session ended (${reason}).`);
  addNotice(`The session ended (${reason}).`);
  $("leave").hidden = true;
  $("language").disabled = true;
  showPlayback(); // what is scheduled plays out
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
  state.unavailableLanguage = null; // audioUnavailable, if any, comes just before the reply
  const reply = waitForMessage(socket, ["sessionJoined", "error"]);
  send(socket, {
    action: "joinSession",
    sessionId: state.sessionId,
    targetLanguage: state.language,
    output: state.output,
  });
  return reply;
}

async function join(event) {
  event.preventDefault();
  showError("");
  state.sessionId = $("session-id").value.trim();
  state.left = false;
  state.language = $("language").value;
  state.output = document.querySelector('input[name="output"]:checked').value; // as the form shows it
  startSound(); // within the click: browsers start audio only after a gesture
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
        output: state.output,
      }),
      { onMessage, onClose },
    );
    const complete = await waitForMessage(socket, ["connectionRefreshComplete"]);
    state.connectionId = complete.connectionId;
    state.socket = socket;
    old.close();
    if (state.playbackPaused) send(socket, { action: "pausePlayback" }); // the new connection's row plays
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
  player.setAccepting(false);
  $("leave").hidden = true;
  $("join").hidden = false;
  $("session-id").readOnly = false;
  setStatus("You left the session.");
  addNotice("You left the session.");
  showPlayback();
}

/** Whether this listener's page plays the translation now. */
function wantsAudio() {
  return state.output !== "captions" && !state.playbackPaused;
}

/** The AudioContext, made or resumed within a user gesture; without Web Audio the page offers captions only. */
function startSound() {
  if (!Player.supported()) return;
  player.start().catch((error) => addNotice(`The browser would not start the sound: ${error.message}`));
}

function changeOutput() {
  state.output = document.querySelector('input[name="output"]:checked').value;
  if (state.joined) {
    send(state.socket, { action: "setOutput", output: state.output });
    player.setAccepting(wantsAudio());
  }
  showPlayback();
}

function togglePlaybackPause() {
  state.playbackPaused = !state.playbackPaused;
  send(state.socket, { action: state.playbackPaused ? "pausePlayback" : "resumePlayback" });
  player.setAccepting(wantsAudio()); // silent at once; on resume, from the next number received
  showPlayback();
}

function toggleMute() {
  const muted = $("mute-playback").getAttribute("aria-pressed") !== "true";
  player.setMuted(muted);
  showPlayback();
}

function changeVolume() {
  const percent = Number($("playback-volume").value);
  $("playback-volume-value").textContent = `${percent}%`;
  player.setVolume(percent / 100);
}

/** The Sound section: its controls' state and one line saying what this device plays and why. */
function showPlayback() {
  const audio = state.output !== "captions";
  $("pause-playback").disabled = !state.joined || state.ended || !audio;
  $("pause-playback").setAttribute("aria-pressed", String(state.playbackPaused));
  $("pause-playback").textContent = state.playbackPaused ? "Resume playback" : "Pause playback";
  $("mute-playback").setAttribute("aria-pressed", String(player.muted));
  $("mute-playback").textContent = player.muted ? "Unmute" : "Mute";
  let text = "";
  if (!Player.supported()) text = "This browser cannot play sound: captions only.";
  else if ((!state.joined || state.ended) && !player.playing) text = "";
  else if (!audio) text = "Captions only, as you chose.";
  else if (state.unavailableLanguage && state.unavailableLanguage === state.language)
    text = `No voice speaks ${languageName(state.language)}: captions only.`;
  else if (state.playbackPaused) text = "Playback paused: nothing is spoken to you until you resume.";
  else if (player.context && player.context.state === "suspended")
    text = "The browser holds the sound back: click anywhere on the page to hear it.";
  else text = player.playing ? "Speaking." : "Waiting for the next sentence spoken.";
  if (text && player.muted && audio) text += " Muted on this device.";
  $("playback-state").textContent = text;
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
  $("output").addEventListener("change", changeOutput);
  $("pause-playback").addEventListener("click", togglePlaybackPause);
  $("mute-playback").addEventListener("click", toggleMute);
  $("playback-volume").addEventListener("input", changeVolume);
  // A context the browser held back starts on the next gesture
  document.addEventListener("click", () => {
    if (player.context && player.context.state === "suspended") startSound();
  });
  if (!Player.supported()) {
    for (const input of document.querySelectorAll('input[name="output"]')) input.disabled = input.value !== "captions";
    document.querySelector('input[name="output"][value="captions"]').checked = true;
    state.output = "captions";
  }
  showPlayback();
  setStatus($("session-id").value ? "Choose your language and join." : "Enter the session id, choose your language and join.");
}

main().catch((error) => {
  showError(error.message);
  setStatus("The console could not start.");
});
