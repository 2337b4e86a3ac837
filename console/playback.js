// The listener page's player of the translation spoken (`translatedAudio`, decision 39): each segment's MP3 is
// fetched as soon as its message arrives (its URL expires in minutes), decoded with Web Audio and scheduled on the
// AudioContext's clock to start exactly where the previous one ends (or now, when nothing is playing), in the
// order of `sequenceNumber`. A number that comes early waits a short while for the one before it; a segment that
// fails to fetch or decode is skipped and said, never waited on. Everything goes out through a GainNode (this
// device's mute and volume) and an AnalyserNode that measures what really went out.
//
// `player.stats` (the page exposes it as `window.listenerAudio`) records, for each segment scheduled, its number,
// start and duration on the context's clock and the peak and RMS of its decoded samples; the segments skipped and
// why; and the loudest peak and RMS the analyser measured at the output.

// A segment scheduled "now" starts this far ahead, so that its first samples are not cut.
const LEAD_SECONDS = 0.05;
// A later number waits for a missing predecessor until the audio already scheduled runs out, and at least this
// long after it arrived: posts to one listener come in order, so a number missing longer than that is lost.
const GAP_WAIT_SECONDS = 1.5;
// A fetch (and its body) slower than this is given up, and its segment skipped.
const FETCH_SECONDS = 15;
// How often the output is measured while something plays; the analyser's window (4096 samples, 85 ms at
// 48 kHz) is longer, so no stretch of the output goes unmeasured.
const METER_MS = 50;
const ANALYSER_SAMPLES = 4096;

/** The peak and RMS of a decoded buffer's samples, over all its channels (0 and 0 for silence). */
export function levels(buffer) {
  let peak = 0;
  let squares = 0;
  for (let channel = 0; channel < buffer.numberOfChannels; channel++) {
    const samples = buffer.getChannelData(channel);
    for (let i = 0; i < samples.length; i++) {
      const sample = samples[i];
      const magnitude = Math.abs(sample);
      if (magnitude > peak) peak = magnitude;
      squares += sample * sample;
    }
  }
  const count = buffer.length * buffer.numberOfChannels;
  return { peak, rms: count ? Math.sqrt(squares / count) : 0 };
}

export class Player {
  /**
   * `notice(text)`: tell the listener (a segment skipped); `onChange()`: something started or stopped playing.
   * Nothing plays until `start()` has made the AudioContext, from a user gesture (the Join click).
   */
  constructor({ notice = () => {}, onChange = () => {} } = {}) {
    this.notice = notice;
    this.onChange = onChange;
    this.context = null;
    this.gain = null;
    this.analyser = null;
    this.language = null;
    this.accepting = true; // false while this listener's playback is paused or its output is captions only
    this.entries = new Map(); // sequenceNumber -> {message, status: loading|ready|failed, buffer, error, arrived}
    this.nextNumber = null; // the number to schedule next; null: the next one received is the start
    this.received = new Set(); // the numbers received since that start
    this.endTime = 0; // where the audio scheduled so far ends, on the context's clock
    this.sources = new Set(); // scheduled and not yet ended
    this.waitTimer = null;
    this.meterTimer = null;
    this.volume = 1;
    this.muted = false;
    this.stats = { played: [], skipped: [], output: { peak: 0, rms: 0 }, contextState: "none" };
  }

  /** Whether this browser has Web Audio at all. */
  static supported() {
    return typeof window.AudioContext === "function";
  }

  /** Make (or resume) the AudioContext: call it from a user gesture, as browsers only start audio after one. */
  start() {
    if (!this.context) {
      this.context = new AudioContext();
      this.gain = this.context.createGain();
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = ANALYSER_SAMPLES;
      this.gain.connect(this.analyser);
      this.analyser.connect(this.context.destination);
      this.applyGain();
      this.context.addEventListener("statechange", () => {
        this.stats.contextState = this.context.state;
        this.onChange();
      });
    }
    this.stats.contextState = this.context.state;
    return this.context.state === "running" ? Promise.resolve() : this.context.resume();
  }

  /** Whether sound can come out now (the context exists and runs). */
  get running() {
    return Boolean(this.context) && this.context.state === "running";
  }

  /** Whether a segment is playing or scheduled. */
  get playing() {
    return this.sources.size > 0;
  }

  /** The segments of `language` from now on (after a join or a language change): what is queued and not yet
   * scheduled is dropped, what is scheduled plays out, and the next number received is the start. */
  setLanguage(language) {
    this.language = language;
    this.forgetQueue();
  }

  /** Accept segments (true) or stop now and ignore them (false: playback paused, captions only, left). A player
   * accepting again starts from the next number received (none is owed for the time it was off). */
  setAccepting(accepting) {
    if (!accepting) this.stop();
    else if (!this.accepting) this.forgetQueue();
    this.accepting = accepting;
  }

  /** Stop what plays and is scheduled now, and drop the queue. */
  stop() {
    const now = this.context ? this.context.currentTime : 0;
    for (const source of this.sources) {
      source.onended = null;
      source.stop();
    }
    this.sources.clear();
    for (const played of this.stats.played) {
      if (played.start + played.duration > now && played.stoppedAt === undefined) played.stoppedAt = now;
    }
    this.endTime = 0;
    this.forgetQueue();
    this.stopMeter();
    this.onChange();
  }

  setVolume(volume) {
    this.volume = volume;
    this.applyGain();
  }

  setMuted(muted) {
    this.muted = muted;
    this.applyGain();
  }

  applyGain() {
    if (!this.gain) return;
    const value = this.muted ? 0 : this.volume;
    this.gain.gain.setTargetAtTime(value, this.context.currentTime, 0.015); // no click
  }

  /** A `translatedAudio` message: queue it and fetch its audio at once. */
  receive(message) {
    if (!this.context || !this.accepting || message.targetLanguage !== this.language) return;
    const number = message.sequenceNumber;
    if (this.nextNumber === null) this.nextNumber = number;
    if (this.received.has(number)) {
      this.skip(number, message, "duplicate"); // nothing is lost: not said
      return;
    }
    this.received.add(number);
    if (number < this.nextNumber) {
      this.skip(number, message, "late", `Speech segment ${number} came after its turn: skipped.`);
      return;
    }
    const entry = { message, status: "loading", buffer: null, error: null, arrived: performance.now() };
    this.entries.set(number, entry);
    this.load(entry).then(() => {
      if (this.entries.get(number) === entry) this.pump();
    });
    this.pump();
  }

  async load(entry) {
    try {
      const response = await fetch(entry.message.url, { signal: AbortSignal.timeout(FETCH_SECONDS * 1000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const bytes = await response.arrayBuffer();
      entry.buffer = await this.context.decodeAudioData(bytes);
      entry.status = "ready";
    } catch (error) {
      entry.status = "failed";
      entry.error = error && error.message ? error.message : String(error);
    }
  }

  forgetQueue() {
    this.entries.clear();
    this.nextNumber = null;
    this.received.clear();
    clearTimeout(this.waitTimer);
    this.waitTimer = null;
  }

  skip(number, message, reason, text) {
    this.stats.skipped.push({ sequenceNumber: number, segmentId: message ? message.segmentId : null, reason });
    if (text) this.notice(text);
  }

  /** Schedule every segment whose turn has come, in order; wait for one still loading or briefly missing. */
  pump() {
    clearTimeout(this.waitTimer);
    this.waitTimer = null;
    while (this.nextNumber !== null) {
      const entry = this.entries.get(this.nextNumber);
      if (!entry) {
        const later = Math.min(...[...this.entries.keys()].filter((number) => number > this.nextNumber));
        if (!Number.isFinite(later)) return; // nothing queued: the next one plays when it comes
        const waitMs = this.gapDeadline(this.entries.get(later)) - performance.now();
        if (waitMs > 0) {
          this.waitTimer = setTimeout(() => this.pump(), waitMs);
          return;
        }
        const missing = later - 1 === this.nextNumber ? `${this.nextNumber}` : `${this.nextNumber}–${later - 1}`;
        for (let number = this.nextNumber; number < later; number++) this.skip(number, null, "missing");
        this.notice(`Speech segment ${missing} never came: skipped.`);
        this.nextNumber = later;
        continue;
      }
      if (entry.status === "loading") return; // its load pumps again
      this.entries.delete(this.nextNumber);
      if (entry.status === "failed") {
        this.skip(
          this.nextNumber,
          entry.message,
          "failed",
          `Speech segment ${this.nextNumber} could not be played (${entry.error}): skipped.`,
        );
      } else {
        this.schedule(entry);
      }
      this.nextNumber += 1;
    }
  }

  /** Until when (performance.now()) a missing number is waited for, with `later` queued behind it. */
  gapDeadline(later) {
    const scheduledLeft = Math.max(0, this.endTime - this.context.currentTime - LEAD_SECONDS);
    return Math.max(later.arrived + GAP_WAIT_SECONDS * 1000, performance.now() + scheduledLeft * 1000);
  }

  schedule(entry) {
    const { buffer, message } = entry;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.gain);
    const start = Math.max(this.context.currentTime + LEAD_SECONDS, this.endTime);
    source.start(start);
    this.endTime = start + buffer.duration;
    this.sources.add(source);
    source.onended = () => {
      this.sources.delete(source);
      if (!this.sources.size) this.stopMeter();
      this.onChange();
    };
    this.stats.played.push({
      sequenceNumber: message.sequenceNumber,
      segmentId: message.segmentId,
      language: message.targetLanguage,
      transcript: message.transcript,
      start,
      duration: buffer.duration,
      announcedDuration: message.duration,
      ...levels(buffer),
    });
    this.startMeter();
    this.onChange();
  }

  startMeter() {
    if (this.meterTimer) return;
    const samples = new Float32Array(this.analyser.fftSize);
    this.meterTimer = setInterval(() => {
      this.analyser.getFloatTimeDomainData(samples);
      let peak = 0;
      let squares = 0;
      for (const sample of samples) {
        peak = Math.max(peak, Math.abs(sample));
        squares += sample * sample;
      }
      const output = this.stats.output;
      output.peak = Math.max(output.peak, peak);
      output.rms = Math.max(output.rms, Math.sqrt(squares / samples.length));
    }, METER_MS);
  }

  stopMeter() {
    clearInterval(this.meterTimer);
    this.meterTimer = null;
  }
}
