// The mic-driven avatar's page client (run by the Live tab's gr.HTML js_on_load, with
// `element` = that HTML block). window.avatarLiveMic.open() runs inside the Start click
// (microphone permission and the AudioContext need the user's gesture); connect(token)
// runs once the server has reserved a session. Audio goes up a WebSocket as 20 ms blocks
// of 16 kHz int16 PCM from an AudioWorklet; frames come back as JPEGs of the changed
// rectangle, drawn into a canvas whose captureStream() is the <video id="live-mic-video">.
// The microphone is never played back (no echo): the worklet feeds a muted gain node.
(() => {
  const M = window.avatarLiveMic || (window.avatarLiveMic = {});
  M.root = element;
  M.video = element.querySelector("#live-mic-video");
  M.statsEl = element.querySelector("#live-mic-stats");
  M.canvas = element.querySelector("#live-mic-canvas");
  const HEADER = 24;
  const WORKLET = `
class AvatarMic extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.ratio = options.processorOptions.rate / 16000;
    this.block = new Int16Array(320);
    this.fill = 0;
    this.pos = 0;      // fractional input position of the next output sample
    this.acc = 0;
    this.count = 0;
  }
  push(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.block[this.fill++] = s < 0 ? s * 32768 : s * 32767;
    if (this.fill === this.block.length) {
      this.port.postMessage(this.block.buffer, [this.block.buffer]);
      this.block = new Int16Array(320);
      this.fill = 0;
    }
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    if (this.ratio === 1) { for (let i = 0; i < ch.length; i++) this.push(ch[i]); return true; }
    for (let i = 0; i < ch.length; i++) {   // box-filter decimation to 16 kHz
      this.acc += ch[i]; this.count++;
      this.pos += 1;
      if (this.pos >= this.ratio) { this.push(this.acc / this.count); this.acc = 0; this.count = 0; this.pos -= this.ratio; }
    }
    return true;
  }
}
registerProcessor("avatar-mic", AvatarMic);`;

  const show = (text, cls) => {
    if (!M.statsEl) return;
    M.statsEl.textContent = text;
    M.statsEl.dataset.state = cls || "";
  };
  M.show = show;

  const socketUrl = (token) => {
    const cfg = window.gradio_config || {};
    let base = cfg.root ? String(cfg.root) : location.origin + location.pathname;
    if (!base.endsWith("/")) base += "/";
    const url = new URL("live/mic/ws/" + encodeURIComponent(token), base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  };

  M.release = () => {
    if (M.node) { try { M.node.port.onmessage = null; M.node.disconnect(); } catch (e) {} }
    if (M.stream) M.stream.getTracks().forEach((t) => t.stop());
    if (M.ac) { try { M.ac.close(); } catch (e) {} }
    M.node = M.stream = M.ac = M.pending = null;
  };

  M.stop = (message) => {
    const ws = M.ws;
    M.ws = null;
    if (ws) {
      try { if (ws.readyState === 1) ws.send(JSON.stringify({ type: "stop" })); ws.close(); } catch (e) {}
    }
    M.release();
    if (message !== undefined) show(message, "stopped");
    else if (M.statsEl && M.statsEl.dataset.state === "running") show("stopped", "stopped");
    return [];
  };

  // In the click: ask for the microphone and start audio while the gesture counts.
  M.open = () => {
    M.stop();
    show("starting the microphone…", "starting");
    M.pending = navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
    M.pending.catch(() => {});
    // a 16 kHz context lets the browser resample; window.avatarLiveMicNativeRate keeps the device's rate
    // (the worklet then decimates), as Firefox needs
    try {
      M.ac = window.avatarLiveMicNativeRate ? new AudioContext() : new AudioContext({ sampleRate: 16000 });
    } catch (e) { M.ac = new AudioContext(); }
    M.ac.resume().catch(() => {});
  };

  M.connect = async (token) => {
    if (!token) { M.stop("microphone not started (see the message above)"); return []; }
    if (!M.pending) M.open();
    let stream;
    try {
      stream = await M.pending;
    } catch (err) {
      M.stop("no microphone: " + (err && err.message ? err.message : err));
      return [];
    }
    M.stream = stream;
    let source;
    try {
      source = M.ac.createMediaStreamSource(stream);
    } catch (err) {  // Firefox: a 16 kHz context cannot take a 48 kHz microphone; resample in the worklet
      try { M.ac.close(); } catch (e) {}
      M.ac = new AudioContext();
      source = M.ac.createMediaStreamSource(stream);
    }
    const ac = M.ac;
    const url = URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" }));
    await ac.audioWorklet.addModule(url);
    const node = new AudioWorkletNode(ac, "avatar-mic", { processorOptions: { rate: ac.sampleRate } });
    M.node = node;
    const mute = ac.createGain();
    mute.gain.value = 0;  // the worklet must be pulled by the graph, but nothing is heard
    source.connect(node);
    node.connect(mute).connect(ac.destination);
    await ac.resume().catch(() => {});

    const ws = new WebSocket(socketUrl(token));
    ws.binaryType = "arraybuffer";
    M.ws = ws;
    const ctx2d = M.canvas.getContext("2d");
    let track = null;
    let chain = Promise.resolve();
    M.frames = 0;
    M.arrivals = [];
    M.lastServerStats = null;
    M.roundTrip = [];
    M.serverLatencies = [];  // per frame, ms (read by bench/live_mic.py)
    M.micToScreen = [];
    node.port.onmessage = (e) => {
      if (ws.readyState !== 1) return;
      const pcm = new Uint8Array(e.data);
      const msg = new ArrayBuffer(8 + pcm.byteLength);
      new DataView(msg).setFloat64(0, performance.now(), true);
      new Uint8Array(msg, 8).set(pcm);
      ws.send(msg);
    };
    const render = () => {
      const now = performance.now();
      while (M.arrivals.length && M.arrivals[0] < now - 2000) M.arrivals.shift();
      const span = M.arrivals.length > 1 ? Math.min(2000, now - M.arrivals[0]) : 2000;
      const fps = M.arrivals.length > 1 ? (M.arrivals.length - 1) * 1000 / span : 0;
      const s = M.lastServerStats;
      const rt = M.roundTrip.length ? M.roundTrip.slice().sort((a, b) => a - b)[M.roundTrip.length >> 1] : 0;
      const latency = s ? Math.round(s.latency_ms) : 0;
      show(`latency ${latency} ms · ${Math.round(fps)} fps` + (rt ? ` · mic to screen ${Math.round(rt)} ms` : ""), "running");
      Object.assign(M.statsEl.dataset, {
        latencyMs: String(latency), latencyP95Ms: String(s ? s.latency_p95_ms : 0), fps: fps.toFixed(1),
        frames: String(M.frames), micToScreenMs: String(Math.round(rt)), dropped: String(s ? s.dropped : 0),
      });
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        const msg = JSON.parse(ev.data);
        if (msg.type === "ready") {
          M.canvas.width = msg.width; M.canvas.height = msg.height;
          const cs = M.canvas.captureStream(0);
          track = cs.getVideoTracks()[0];
          M.video.srcObject = cs;  // video only: the page never plays the microphone back
          M.video.muted = true;
          M.video.play().catch(() => {});
          show("listening…", "running");
        } else if (msg.type === "stats") {
          M.lastServerStats = msg;
          render();
        } else if (msg.type === "error") {
          M.stop(msg.message);
        }
        return;
      }
      const buf = ev.data;
      const view = new DataView(buf);
      const x = view.getUint16(2, true), y = view.getUint16(4, true);
      const stamp = view.getFloat64(16, true);
      M.serverLatencies.push(view.getFloat32(12, true));
      if (M.serverLatencies.length > 6000) M.serverLatencies.shift();
      const jpeg = buf.byteLength > HEADER ? new Blob([new Uint8Array(buf, HEADER)], { type: "image/jpeg" }) : null;
      chain = chain.then(async () => {
        if (jpeg) {
          const bmp = await createImageBitmap(jpeg);
          ctx2d.drawImage(bmp, x, y);
          bmp.close();
        }
        if (track && track.requestFrame) track.requestFrame();
        M.frames++;
        const now = performance.now();
        M.arrivals.push(now);
        if (stamp > 0) {
          M.roundTrip.push(now - stamp); if (M.roundTrip.length > 50) M.roundTrip.shift();
          M.micToScreen.push(now - stamp); if (M.micToScreen.length > 6000) M.micToScreen.shift();
        }
      }).catch(() => {});
    };
    ws.onclose = () => {
      if (M.ws === ws) M.stop(M.statsEl && M.statsEl.dataset.state === "running" ? "stopped" : undefined);
    };
    return [];
  };
  window.addEventListener("pagehide", () => M.stop());
})();
