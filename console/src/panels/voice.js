// Voice: push-to-talk streams the microphone as 16 kHz PCM16 to /ws/speech, shows the
// transcript and the reply, and plays the reply's audio; commands can be typed too.
import { tokens } from "../api.js";
import { $ } from "../dom.js";
import { Reconnecting, socketUrl } from "../reconnect.js";

let socket = null;
let audioHeader = null;
let capture = null;

function message(event) {
  if (typeof event.data !== "string") {
    if (audioHeader) {
      const url = URL.createObjectURL(new Blob([event.data], { type: "audio/wav" }));
      new Audio(url).play().catch(() => {});
      audioHeader = null;
    }
    return;
  }
  const data = JSON.parse(event.data);
  if (data.type === "transcription") $("transcript").textContent = data.data.text || "(nothing heard)";
  else if (data.type === "voice_response") $("reply").textContent = data.data.text;
  else if (data.type === "tts_audio") audioHeader = data;
  else if (data.type === "error") $("reply").textContent = `error: ${data.message}`;
}

async function startTalking() {
  if (capture) return;
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const context = new AudioContext();
  await context.audioWorklet.addModule("/console/mic-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm16-at-16k");
  node.port.onmessage = (event) => socket.send(event.data);
  source.connect(node);
  socket.send(JSON.stringify({ type: "stt", action: "start", sampleRate: 16000 }));
  capture = { stream, context };
  $("talk").setAttribute("aria-pressed", "true");
}

function stopTalking() {
  if (!capture) return;
  socket.send(JSON.stringify({ type: "stt", action: "stop", speak: true }));
  capture.stream.getTracks().forEach((track) => track.stop());
  capture.context.close();
  capture = null;
  $("talk").setAttribute("aria-pressed", "false");
}

export function startVoice() {
  $("voice-panel").hidden = false;
  socket = new Reconnecting(socketUrl("/ws/speech"), { message }, () => tokens.api);
  const talk = $("talk");
  talk.addEventListener("pointerdown", () => startTalking().catch((error) => {
    $("reply").textContent = `microphone: ${error.message}`;
  }));
  for (const type of ["pointerup", "pointerleave"]) talk.addEventListener(type, stopTalking);
  $("command-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("command-text").value.trim();
    if (text) socket.send(JSON.stringify({ type: "voice_command", text, speak: true }));
    $("command-text").value = "";
  });
  return socket;
}
