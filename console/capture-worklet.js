// The speaker's microphone as the service's audio format: 16-bit little-endian mono PCM at the target rate, posted
// to the page in chunks of `chunkSamples`. The page runs it in an AudioContext at the target rate where the browser
// allows (the browser then resamples); at any other context rate it resamples here by linear interpolation.

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, chunkSamples } = options.processorOptions;
    this.step = sampleRate / targetRate; // input samples per output sample (`sampleRate`: the context's rate)
    this.position = 0; // where the next output sample lies, in input samples from the current block's start
    this.previous = 0; // the last input sample of the previous block (position -1)
    this.chunk = new Int16Array(chunkSamples);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    const mono = new Float32Array(length);
    for (const channel of channels) for (let i = 0; i < length; i++) mono[i] += channel[i] / channels.length;
    while (this.position <= length - 1) {
      const index = Math.floor(this.position);
      const fraction = this.position - index;
      const a = index < 0 ? this.previous : mono[index];
      const b = index + 1 < length ? mono[index + 1] : a;
      this.emit(a + (b - a) * fraction);
      this.position += this.step;
    }
    this.position -= length;
    this.previous = mono[length - 1];
    return true;
  }

  emit(sample) {
    const clamped = Math.max(-1, Math.min(1, sample));
    this.chunk[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === this.chunk.length) {
      const buffer = this.chunk.buffer.slice(0);
      this.port.postMessage(buffer, [buffer]);
      this.filled = 0;
    }
  }
}

registerProcessor("pcm-capture", PcmCapture);
