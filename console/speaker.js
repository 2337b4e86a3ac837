// The speaker page: create a session with its partial-result settings, stream the microphone as `sendAudio`, show
// the transcript and the audience, control the broadcast, change settings live, end the session; save the
// session's transcripts from the HTTP API, or delete them.

import {
  addNotice,
  backoffSeconds,
  connect,
  devToken,
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

const $ = (id) => document.getElementById(id);

// What the controls are called on the page; each also shows the name the service's messages use for it.
const LABELS = { partialResults: "Partial results", minStability: "Minimum stability", maxBufferTimeout: "Maximum buffer time" };

const state = {
  config: null,
  socket: null,
  sessionId: null,
  connectionId: null,
  sequenceNumber: 0, // counted per connection
  accepted: 0,
  dropped: 0,
  paused: false,
  muted: false,
  ended: false,
  refreshing: false,
  audio: null, // { context, stream }
  stopHeartbeats: null,
  transcriptLanguages: new Set(), // the source language, then each that has had listeners: a line of links each
};

/** The controls of the partial-result settings, one per entry of config.settings (bounds from the server). */
function buildSettings(settings) {
  const fieldset = $("settings");
  for (const setting of settings) {
    const wrapper = document.createElement("div");
    wrapper.className = "field";
    const id = `setting-${setting.request}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    const input = document.createElement("input");
    input.id = id;
    input.name = setting.request;
    input.dataset.setting = setting.request;
    input.dataset.kind = setting.kind;
    if (setting.kind === "boolean") {
      input.type = "checkbox";
      input.checked = setting.default;
      label.textContent = `${LABELS[setting.request] || setting.request} (${setting.request})`;
      wrapper.classList.add("checkbox");
      wrapper.append(input, label);
    } else {
      input.type = "number";
      input.inputMode = "decimal";
      input.min = setting.lower;
      input.max = setting.upper;
      input.step = setting.step;
      const decimals = Math.max(0, -Math.floor(Math.log10(setting.step))); // 0.01 → 2: "0.70", 0.1 → 1: "5.0"
      const shown = (value) => value.toFixed(decimals);
      input.dataset.decimals = String(decimals);
      input.value = shown(setting.default);
      const unit = setting.unit ? ` ${setting.unit}` : "";
      const hint = document.createElement("small");
      hint.id = `${id}-hint`;
      hint.textContent = `${shown(setting.lower)}–${shown(setting.upper)}${unit}, default ${shown(setting.default)}`;
      input.setAttribute("aria-describedby", hint.id);
      label.textContent = `${LABELS[setting.request] || setting.request} (${setting.request})`;
      wrapper.append(label, input, hint);
    }
    fieldset.append(wrapper);
  }
}

/** The settings as typed: numbers as JSON numbers when they parse, otherwise the text as it is. */
function settingValues() {
  const values = {};
  for (const input of document.querySelectorAll("[data-setting]")) {
    if (input.dataset.kind === "boolean") {
      values[input.dataset.setting] = input.checked;
    } else {
      const text = input.value.trim();
      const number = Number(text);
      values[input.dataset.setting] = text !== "" && Number.isFinite(number) ? number : text;
    }
  }
  return values;
}

function showSettings(message) {
  for (const setting of state.config.settings) {
    const input = document.querySelector(`[data-setting="${setting.request}"]`);
    if (!(setting.message in message)) continue;
    if (setting.kind === "boolean") input.checked = message[setting.message];
    else input.value = Number(message[setting.message]).toFixed(Number(input.dataset.decimals));
  }
}

function showBroadcast(message) {
  state.paused = Boolean(message.isPaused);
  state.muted = Boolean(message.isMuted);
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(state.paused));
  $("mute").textContent = state.muted ? "Unmute" : "Mute";
  $("mute").setAttribute("aria-pressed", String(state.muted));
  $("volume").value = message.volume;
  $("volume-value").textContent = Number(message.volume).toFixed(1);
}

function showAudience(message) {
  $("listener-count").textContent = String(message.listenerCount);
  const languages = Object.entries(message.listenersByLanguage || {})
    .filter(([, count]) => count > 0)
    .map(([language, count]) => `${language} (${count})`);
  $("listener-languages").textContent = languages.length ? languages.join(", ") : "none yet";
  // Every language with listeners now has captions to take home, and keeps them after its listeners leave.
  const listened = [
    ...(message.languageDistribution || []).filter((entry) => entry.count > 0).map((entry) => entry.languageCode),
    ...Object.entries(message.listenersByLanguage || {})
      .filter(([, count]) => count > 0)
      .map(([language]) => language),
  ];
  for (const language of listened) addTranscriptLanguage(language);
}

// -- the transcript to take home: GET and DELETE on the HTTP API's transcript route (config.transcript) --------

/** The transcript's URL on the HTTP API, with `query` (the route's path and parameter names from config.json). */
function transcriptUrl(query = {}) {
  const { path, sessionIdParameter } = state.config.transcript;
  const route = path.replace(`{${sessionIdParameter}}`, encodeURIComponent(state.sessionId));
  const url = new URL(state.config.httpApiUrl + route);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
  return url;
}

/** A request to the HTTP API with a fresh speaker token (a link alone cannot carry `Authorization`). */
async function withToken(url, method = "GET") {
  return fetch(url, { method, headers: { Authorization: `Bearer ${await devToken()}` }, cache: "no-store" });
}

/** What the HTTP API says of a refusal: its catalogue message word for word (`{code, message, field?}`). */
async function refusalOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") return body.message;
  } catch {
    // not JSON: the status says what there is to say
  }
  return `${response.status} ${response.statusText}`.trim();
}

/** The file name a `Content-Disposition: attachment; filename="…"` gives, or null. */
function attachmentName(disposition) {
  const match = /filename="([^"]+)"/i.exec(disposition || "");
  return match ? match[1] : null;
}

/** One language's line: its name and a link per format, each saving the document under the API's file name. */
function addTranscriptLanguage(language) {
  if (!state.config.httpApiUrl || state.transcriptLanguages.has(language)) return;
  state.transcriptLanguages.add(language);
  const { languageParameter, formatParameter, formats } = state.config.transcript;
  const line = document.createElement("li");
  line.dataset.language = language;
  const name = document.createElement("span");
  name.className = "language";
  name.textContent = languageName(language);
  line.append(name);
  formats.forEach(({ format, label }, index) => {
    if (index > 0) {
      const separator = document.createElement("span");
      separator.setAttribute("aria-hidden", "true");
      separator.textContent = "·";
      line.append(separator);
    }
    const link = document.createElement("a");
    link.href = transcriptUrl({ [languageParameter]: language, [formatParameter]: format }).toString();
    link.dataset.format = format;
    link.textContent = label;
    link.setAttribute("aria-label", `${label} transcript in ${languageName(language)}`);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      saveTranscript(link, `${state.sessionId}.${language}.${format}`);
    });
    line.append(link);
  });
  $("transcript-downloads").append(line);
}

/** Fetch a link's document with the speaker's token and save it (a Blob URL, named as the API names it). */
async function saveTranscript(link, fallbackName) {
  if (link.getAttribute("aria-busy") === "true") return;
  link.setAttribute("aria-busy", "true");
  showError("");
  try {
    const response = await withToken(link.href);
    if (!response.ok) {
      showError(await refusalOf(response));
      return;
    }
    const name = attachmentName(response.headers.get("Content-Disposition")) || fallbackName;
    const url = URL.createObjectURL(await response.blob());
    const save = document.createElement("a");
    save.href = url;
    save.download = name;
    save.hidden = true;
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000); // once the browser has surely read it
    $("transcript-state").textContent = `Saved ${name}.`;
  } catch (error) {
    showError(`Transcript: ${error.message}`);
  } finally {
    link.removeAttribute("aria-busy");
  }
}

/** Delete the session's transcript in every language at once, after the speaker confirms. */
async function deleteTranscript() {
  const question = `Delete the transcript of session ${state.sessionId} in every language? This cannot be undone.`;
  if (!window.confirm(question)) return;
  const button = $("delete-transcript");
  button.disabled = true;
  showError("");
  $("transcript-state").textContent = "Deleting the transcript…";
  try {
    const response = await withToken(transcriptUrl(), "DELETE");
    if (!response.ok) {
      $("transcript-state").textContent = "";
      showError(await refusalOf(response));
      return;
    }
    const done = state.ended
      ? "Transcript deleted."
      : "Transcript deleted: what is said from now on is recorded again.";
    $("transcript-state").textContent = done;
    addNotice(done);
  } catch (error) {
    $("transcript-state").textContent = "";
    showError(`Transcript: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function showCounters() {
  $("chunks-accepted").textContent = String(state.accepted);
  $("chunks-dropped").textContent = String(state.dropped);
}

function onMessage(message, socket) {
  if (socket !== state.socket && message.type !== "connectionRefreshComplete") return;
  switch (message.type) {
    case "sessionCreated":
    case "sessionResumed":
      onSessionStarted(message);
      break;
    case "audioReceived":
      if (message.accepted) state.accepted += 1;
      else state.dropped += 1;
      showCounters();
      break;
    case "transcript":
      showSegment($("transcript"), message);
      break;
    case "sessionStatus":
      showAudience(message);
      showBroadcast(message.broadcastState);
      break;
    case "broadcastState":
    case "stateRestored":
      showBroadcast(message);
      break;
    case "sessionConfigUpdated":
      showSettings(message);
      showError("");
      addNotice("Settings applied.");
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

function onSessionStarted(message) {
  const firstTime = state.sessionId === null;
  state.sessionId = message.sessionId;
  state.connectionId = message.connectionId;
  showSettings(message);
  showError("");
  if (firstTime) {
    const link = `${state.config.consoleUrl}listener.html?session=${encodeURIComponent(message.sessionId)}`;
    $("session-id").textContent = message.sessionId;
    $("share-link").href = link;
    $("share-link").textContent = link;
    $("qr").src = `qr/${encodeURIComponent(message.sessionId)}.svg`;
    $("live").hidden = false;
    $("start").hidden = true;
    $("apply-settings").hidden = false;
    for (const select of [$("source-language"), $("quality-tier")]) select.disabled = true;
    if (state.config.httpApiUrl) {
      addTranscriptLanguage(message.sourceLanguage || $("source-language").value);
      $("take-home").hidden = false;
    }
    addNotice(`Session ${message.sessionId} created.`);
    startAudio().catch((error) => showError(`Microphone: ${error.message}`));
  } else {
    addNotice("Speaker connection resumed.");
  }
  setStatus(`Live: session ${message.sessionId}`);
  send(state.socket, { action: "getSessionStatus", sessionId: state.sessionId });
}

async function startAudio() {
  const { sampleRateHz, chunkMilliseconds } = state.config;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
  });
  let context = new AudioContext({ sampleRate: sampleRateHz });
  let source;
  try {
    source = context.createMediaStreamSource(stream);
  } catch {
    // Some browsers cannot connect a microphone to a context at another rate: capture at the device's rate and
    // let the worklet resample.
    await context.close();
    context = new AudioContext();
    source = context.createMediaStreamSource(stream);
  }
  await context.audioWorklet.addModule("capture-worklet.js");
  const capture = new AudioWorkletNode(context, "pcm-capture", {
    processorOptions: { targetRate: sampleRateHz, chunkSamples: (sampleRateHz * chunkMilliseconds) / 1000 },
  });
  capture.port.onmessage = (event) => sendChunk(event.data);
  source.connect(capture);
  capture.connect(context.destination); // silent: keeps the node pulled by the graph
  await context.resume();
  state.audio = { context, stream };
  addNotice("Microphone on: streaming audio.");
}

function stopAudio() {
  if (!state.audio) return;
  for (const track of state.audio.stream.getTracks()) track.stop();
  state.audio.context.close();
  state.audio = null;
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function sendChunk(buffer) {
  // The service drops audio while the broadcast is paused or muted; the page does not send it at all.
  if (state.ended || state.paused || state.muted) return;
  send(state.socket, {
    action: "sendAudio",
    sessionId: state.sessionId,
    sequenceNumber: state.sequenceNumber,
    timestamp: Date.now(),
    audioData: base64(buffer),
  }) && (state.sequenceNumber += 1);
}

function onEnded(reason) {
  if (state.ended) return;
  state.ended = true;
  stopAudio();
  if (state.stopHeartbeats) state.stopHeartbeats();
  for (const button of document.querySelectorAll("#live button, #apply-settings")) button.disabled = true;
  $("volume").disabled = true;
  setStatus(`Session ended (${reason}). Reload the page to start another.`);
  addNotice(`Session ended (${reason}).`);
  if (state.socket) state.socket.close();
}

async function openSocket(params) {
  const socket = await connect(socketUrl(state.config, params), { onMessage, onClose });
  return socket;
}

function onClose(event, socket) {
  if (socket !== state.socket || state.ended || state.refreshing) return;
  if (state.sessionId === null) {
    setStatus("Disconnected.");
    return;
  }
  resume();
}

/** After a drop: the owner takes the session back with resumeSession (a new connection, counted from 0). */
async function resume() {
  for (let attempt = 0; !state.ended; attempt++) {
    setStatus(`Connection lost: reconnecting (attempt ${attempt + 1})…`);
    try {
      state.sequenceNumber = 0;
      state.socket = await openSocket({ action: "resumeSession", sessionId: state.sessionId, token: await devToken() });
      return;
    } catch (error) {
      addNotice(`Reconnecting failed: ${error.message}`);
      await sleep(backoffSeconds(attempt));
    }
  }
}

/** Near API Gateway's 2-hour limit: a new connection takes over (refreshConnection), then the old one closes. */
async function refresh() {
  if (state.refreshing || state.ended) return;
  state.refreshing = true;
  const old = state.socket;
  try {
    const socket = await openSocket({
      action: "refreshConnection",
      sessionId: state.sessionId,
      role: "speaker",
      token: await devToken(),
      previousConnectionId: state.connectionId,
    });
    const complete = await waitForMessage(socket, ["connectionRefreshComplete"]);
    state.connectionId = complete.connectionId;
    state.socket = socket;
    state.sequenceNumber = 0;
    old.close();
    addNotice("Connection refreshed.");
  } catch (error) {
    addNotice(`Refreshing the connection failed: ${error.message}`);
  } finally {
    state.refreshing = false;
  }
}

async function start(event) {
  event.preventDefault();
  showError("");
  $("start").disabled = true;
  try {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
      setStatus("Connecting…");
      state.socket = await openSocket({ token: await devToken() });
      state.stopHeartbeats = heartbeats(() => state.socket, state.config.heartbeatSeconds);
    }
    setStatus("Creating the session…");
    send(state.socket, {
      action: "createSession",
      sourceLanguage: $("source-language").value,
      qualityTier: $("quality-tier").value,
      ...settingValues(),
    });
  } catch (error) {
    showError(error.message);
    setStatus("Not connected.");
  } finally {
    $("start").disabled = false;
  }
}

function speakerAction(action, fields = {}) {
  send(state.socket, { action, sessionId: state.sessionId, ...fields });
}

async function main() {
  state.config = await loadConfig();
  fillLanguages($("source-language"), state.config.languages, "en");
  for (const tier of state.config.qualityTiers) {
    const option = new Option(tier, tier, tier === state.config.defaultQualityTier, tier === state.config.defaultQualityTier);
    $("quality-tier").append(option);
  }
  buildSettings(state.config.settings);
  const volume = $("volume");
  Object.assign(volume, {
    min: state.config.volume.lower,
    max: state.config.volume.upper,
    step: state.config.volume.step,
    value: state.config.volume.default,
  });
  $("volume-value").textContent = Number(state.config.volume.default).toFixed(1);

  $("session-form").addEventListener("submit", start);
  $("apply-settings").addEventListener("click", () => {
    showError("");
    speakerAction("updateSessionConfig", settingValues());
  });
  $("pause").addEventListener("click", () => speakerAction(state.paused ? "resumeBroadcast" : "pauseBroadcast"));
  $("mute").addEventListener("click", () => speakerAction(state.muted ? "unmuteBroadcast" : "muteBroadcast"));
  volume.addEventListener("input", () => ($("volume-value").textContent = Number(volume.value).toFixed(1)));
  volume.addEventListener("change", () => speakerAction("setVolume", { volumeLevel: Number(volume.value) }));
  $("end").addEventListener("click", () => speakerAction("endSession"));
  $("delete-transcript").addEventListener("click", deleteTranscript);
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("share-link").href);
      addNotice("Listener link copied.");
    } catch {
      addNotice("Copying is not allowed here: select the link instead.");
    }
  });
  setStatus("Ready: choose the settings and start a session.");
}

main().catch((error) => {
  showError(error.message);
  setStatus("The console could not start.");
});
