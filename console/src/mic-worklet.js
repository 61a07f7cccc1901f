// An AudioWorklet that turns the microphone into 16 kHz, 16-bit little-endian mono chunks of
// about 100 ms (what /ws/speech takes), by linear resampling from the context's rate.
class Pcm16At16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.position = 0;
    this.chunk = new Int16Array(1600);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    while (this.position < channel.length) {
      const i = Math.floor(this.position);
      const frac = this.position - i;
      const next = channel[Math.min(i + 1, channel.length - 1)];
      const value = channel[i] * (1 - frac) + next * frac;
      this.chunk[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(value * 32767)));
      if (this.filled === this.chunk.length) {
        this.port.postMessage(this.chunk.buffer.slice(0));
        this.filled = 0;
      }
      this.position += this.ratio;
    }
    this.position -= channel.length;
    return true;
  }
}

registerProcessor("pcm16-at-16k", Pcm16At16k);
