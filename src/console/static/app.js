// The operator console's page: preact + htm (no build step; both served by the daemon from node_modules).
// Everything is polled from the daemon's /api while the page is open and visible; nothing is pushed.
import { h, render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
const enc = encodeURIComponent;
const LIVE_MIN_INTERVAL_MS = 250; // up to 4 fps, never faster than the daemon renders
const TOKEN_KEY = 'etstpm-console-token';

/** @param {string} url */
async function getJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

/** @param {string} url @param {object} body */
async function postJson(url, body = {}) {
  /** @type {Record<string,string>} */
  const headers = { 'content-type': 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || `${r.status} ${r.statusText}`);
  return j;
}

/** Calls fn every ms while the page is visible (and once at once). */
function usePoll(fn, ms, deps) {
  useEffect(() => {
    let stop = false;
    let timer = 0;
    const tick = async () => {
      if (stop) return;
      if (!document.hidden) await fn().catch(() => undefined);
      if (!stop) timer = window.setTimeout(tick, ms);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, deps);
}

const fmtTime = (t) => new Date(t).toLocaleTimeString();
const fmtBytes = (b) => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`);
const fmtRaw = (r) => (Math.abs(r) >= 0.01 ? r.toFixed(4) : r.toExponential(3));
const driftTitle = (d) => (d ? `${d.frames}/${d.window} OK frames; share at or above the calibration quantile ${fmtRaw(d.reference)}`
  + `${d.expectedShare === null ? '' : `, expected ≤ ${(100 * d.expectedShare).toFixed(1)} %`}; warning at ${(100 * d.warnShare).toFixed(1)} % (docs/daemon.md, Drift)` : '');
const fmtUptime = (s) => `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ${s % 60}s`;

function Header({ state }) {
  const hl = state.health;
  return html`<header>
    <h1>etstpm-edge</h1>
    <span class="kv" data-testid="health">health <span class=${`badge ${hl.ok ? 'ok' : 'ng'}`}>${hl.ok ? 'ok' : 'not ok'}</span>
      ${hl.ok ? '' : html` <span>${hl.reason}</span>`}</span>
    <span class="kv">MQTT <span class=${`badge ${hl.mqttConnected ? 'up' : 'down'}`}>${hl.mqttConnected ? 'up' : 'down'}</span></span>
    <span class="kv">provider <b>${hl.provider ?? '-'}</b></span>
    <span class="kv">model <b>${state.model.name}</b> ${state.model.version}</span>
    <span class="kv">${state.model.method}</span>
    <span class="kv">uptime <b>${fmtUptime(hl.uptimeS ?? state.uptimeS)}</b></span>
  </header>`;
}

function Overview({ cameras, selected, onSelect }) {
  return html`<section class="card" data-testid="overview">
    <h2>Cameras</h2>
    <table>
      <thead><tr><th>camera</th><th>state</th><th class="num">fps</th><th class="num">captured</th><th class="num">processed</th>
        <th class="num">dropped</th><th class="num">NG</th><th>provider</th><th>model</th><th class="num">threshold</th><th class="num">drift</th><th>capture</th></tr></thead>
      <tbody>
        ${cameras.map((c) => html`<tr key=${c.camera} class=${`cam ${c.camera === selected ? 'selected' : ''}`} data-camera=${c.camera}
            onClick=${() => onSelect(c.camera)} title="show this camera below">
          <td><b>${c.camera}</b></td>
          <td><span class=${`badge ${c.state}`}>${c.state}</span>${c.error ? html` <span class="muted">${c.error}</span>` : ''}</td>
          <td class="num">${c.fps.toFixed(1)}</td><td class="num">${c.captured}</td><td class="num">${c.processed}</td>
          <td class="num">${c.dropped}</td><td class="num" data-testid="ng-count">${c.ng}</td>
          <td>${c.provider}</td><td>${c.model.name} <span class="muted">${c.model.version}</span></td>
          <td class="num" data-testid="threshold">${c.threshold ? html`${fmtRaw(c.threshold.raw)} <span class="muted">${c.threshold.source}</span>` : '-'}</td>
          <td class="num" data-testid="drift" title=${driftTitle(c.drift)}>${c.drift && c.drift.share !== null
            ? html`<span class=${c.drift.drifting ? 'badge ng' : ''}>${(100 * c.drift.share).toFixed(1)} %</span>` : '-'}</td>
          <td><span class=${`badge ${c.capture.state}`}>${c.capture.state}</span></td>
        </tr>`)}
      </tbody>
    </table>
  </section>`;
}

function LiveView({ camera }) {
  const [src, setSrc] = useState('');
  const [meta, setMeta] = useState(null);
  const [note, setNote] = useState('waiting for the first frame…');
  useEffect(() => {
    let stop = false;
    let url = '';
    let timer = 0;
    const loop = async () => {
      if (stop) return;
      const t0 = performance.now();
      let wait = LIVE_MIN_INTERVAL_MS;
      if (!document.hidden) {
        try {
          const r = await fetch(`/api/cameras/${enc(camera)}/live.jpg`, { cache: 'no-store' });
          if (r.ok) {
            const blob = await r.blob();
            if (stop) return;
            const next = URL.createObjectURL(blob);
            setSrc(next);
            if (url) URL.revokeObjectURL(url);
            url = next;
            setMeta({ seq: r.headers.get('x-seq'), score: Number(r.headers.get('x-score')), verdict: r.headers.get('x-verdict'), at: Number(r.headers.get('x-captured-at')) });
            setNote('');
          } else {
            const j = await r.json().catch(() => ({}));
            setNote(j.error || `${r.status}`);
            wait = 500;
          }
        } catch (e) {
          setNote(String(e));
          wait = 1000;
        }
      }
      if (!stop) timer = window.setTimeout(loop, Math.max(0, wait - (performance.now() - t0)));
    };
    loop();
    return () => {
      stop = true;
      clearTimeout(timer);
      if (url) URL.revokeObjectURL(url);
    };
  }, [camera]);
  return html`<div class="live">
    <h2>Live: ${camera}</h2>
    ${src ? html`<img data-testid="live-image" src=${src} alt=${`latest frame of ${camera} with anomaly heat map`} />` : html`<p class="muted">${note}</p>`}
    ${meta && html`<div class="caption" data-testid="live-caption" data-seq=${meta.seq}>
      <span class=${`badge ${meta.verdict}`}>${meta.verdict === 'ng' ? 'NG' : 'OK'}</span>
      <span>score <b>${meta.score.toFixed(3)}</b> (threshold 0.500)</span>
      <span class="muted">frame ${meta.seq} · ${fmtTime(meta.at)}</span></div>`}
    <p class="muted">Red: anomaly heat map (from half-way below the threshold); yellow: outline of the predicted defect (map ≥ threshold).</p>
  </div>`;
}

function Trend({ camera, seconds }) {
  const ref = useRef(null);
  const [n, setN] = useState(0);
  usePoll(async () => {
    const d = await getJson(`/api/cameras/${enc(camera)}/trend?seconds=${seconds}`);
    setN(d.t.length);
    draw(ref.current, d, seconds);
  }, 2000, [camera, seconds]);
  return html`<div><h2>Score trend, last ${Math.round(seconds / 60)} min <span class="muted">(${n} frames)</span></h2>
    <canvas class="trend" ref=${ref} data-testid="trend"></canvas></div>`;
}

/** Scores as dots over time, the threshold (0.5) as a dashed line; NG above it in red. */
function draw(canvas, d, seconds) {
  if (!canvas) return;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const hgt = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = hgt * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, hgt);
  const pad = { l: 34, r: 8, t: 8, b: 18 };
  const now = Date.now();
  const x = (t) => pad.l + ((t - (now - seconds * 1000)) / (seconds * 1000)) * (w - pad.l - pad.r);
  const y = (s) => pad.t + (1 - s) * (hgt - pad.t - pad.b);
  g.font = '11px system-ui';
  g.fillStyle = '#667085';
  g.strokeStyle = '#eaecf0';
  for (const s of [0, 0.25, 0.5, 0.75, 1]) {
    g.beginPath(); g.moveTo(pad.l, y(s)); g.lineTo(w - pad.r, y(s)); g.stroke();
    g.fillText(s.toFixed(2), 2, y(s) + 4);
  }
  g.fillText(`-${Math.round(seconds / 60)} min`, pad.l, hgt - 4);
  g.fillText('now', w - pad.r - 22, hgt - 4);
  g.strokeStyle = '#c4320a';
  g.setLineDash([6, 4]);
  g.beginPath(); g.moveTo(pad.l, y(d.threshold)); g.lineTo(w - pad.r, y(d.threshold)); g.stroke();
  g.setLineDash([]);
  for (let i = 0; i < d.t.length; i++) {
    g.fillStyle = d.s[i] >= d.threshold ? '#c4320a' : '#2f5bd3';
    g.fillRect(x(d.t[i]) - 1.5, y(d.s[i]) - 1.5, 3, 3);
  }
}

function Capture({ camera, status, control, onError }) {
  const [everyN, setEveryN] = useState(status.everyN);
  const [maxImages, setMaxImages] = useState(status.maxImages);
  const running = status.state === 'running';
  const denied = control === 'read-only';
  const act = (what) => postJson(`/api/cameras/${enc(camera)}/capture/${what}`, what === 'start' ? { everyN: Number(everyN), maxImages: Number(maxImages) } : {})
    .then(() => onError(''), (e) => onError(`capture ${what}: ${e.message}`));
  return html`<div data-testid="capture">
    <h2>Capture good parts (training images)</h2>
    <div class="row">
      <label>every Nth frame <input type="number" min="1" value=${everyN} onInput=${(e) => setEveryN(e.currentTarget.value)} data-testid="capture-everyn" /></label>
      <label>images <input type="number" min="1" value=${maxImages} onInput=${(e) => setMaxImages(e.currentTarget.value)} data-testid="capture-max" /></label>
      <button data-testid="capture-start" disabled=${running || denied} onClick=${() => act('start')}>Start</button>
      <button class="secondary" data-testid="capture-stop" disabled=${!running || denied} onClick=${() => act('stop')}>Stop</button>
    </div>
    <div class="row" data-testid="capture-status" data-state=${status.state} data-written=${status.written}>
      <span class=${`badge ${status.state}`}>${status.state}</span>
      <span>${status.written} / ${status.maxImages} images, ${fmtBytes(status.bytes)}${status.skipped ? `, ${status.skipped} skipped (disk busy)` : ''}</span>
      ${status.reason && html`<span class="muted">${status.reason}</span>`}
    </div>
    <div class="muted">into <code>${status.dir}</code>; then <code>etstpm train --data ${status.dir.replace(/\/[^/]+\/train\/good$/, '')} --category ${camera} ...</code> (docs/commissioning.md)</div>
  </div>`;
}

/** Run-time threshold override (raw score; lasts until the next SIGHUP or restart: docs/console.md). */
function Threshold({ camera, threshold, control, onError }) {
  const [value, setValue] = useState('');
  if (!threshold) return null;
  const denied = control === 'read-only';
  const set = (v) => postJson(`/api/cameras/${enc(camera)}/threshold`, { threshold: v })
    .then(() => { onError(''); setValue(''); }, (e) => onError(`threshold: ${e.message}`));
  return html`<div data-testid="threshold-control">
    <h2>Threshold (raw score)</h2>
    <div class="row">
      <span>now <b data-testid="threshold-raw">${fmtRaw(threshold.raw)}</b> <span class="muted">(${threshold.source}; model ${fmtRaw(threshold.model)})</span></span>
      <label>new <input type="number" min="0" step="any" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} data-testid="threshold-input" /></label>
      <button data-testid="threshold-set" disabled=${denied || value === ''} onClick=${() => set(Number(value))}>Set</button>
      <button class="secondary" data-testid="threshold-reset" disabled=${denied || threshold.source !== 'runtime'} onClick=${() => set(null)}>Reset</button>
    </div>
    <div class="muted">Until the next SIGHUP or restart; to keep it, set <code>cameras[].threshold</code> in the config.</div>
  </div>`;
}

function NgReview({ camera, control, onError }) {
  const [items, setItems] = useState([]);
  const [kept, setKept] = useState(0);
  const load = useCallback(async () => {
    const d = await getJson(`/api/cameras/${enc(camera)}/ng`);
    setItems(d.items);
    setKept(d.kept);
  }, [camera]);
  usePoll(load, 2000, [camera]);
  const mark = (id) => postJson(`/api/cameras/${enc(camera)}/ng/${id}/false-reject`).then(() => { onError(''); return load(); }, (e) => onError(`false reject: ${e.message}`));
  return html`<section class="card" data-testid="ng-review">
    <h2>NG review: ${camera} <span class="muted">(last ${kept} kept in memory, newest first)</span></h2>
    ${items.length === 0 ? html`<p class="muted">No NG frame yet.</p>` : ''}
    <div class="ngs">
      ${items.map((it) => html`<figure key=${it.id} data-testid="ng-item" data-id=${it.id}>
        <img loading="lazy" src=${`/api/cameras/${enc(camera)}/ng/${it.id}.jpg`} alt=${`NG frame ${it.seq}`} />
        <figcaption>${fmtTime(it.capturedAt)} · frame ${it.seq}<br />score <b>${it.score.toFixed(3)}</b></figcaption>
        ${it.savedTo
          ? html`<div class="saved" data-testid="saved">saved as false reject: ${it.savedTo}</div>`
          : html`<button class="secondary" data-testid="false-reject" disabled=${control === 'read-only'} onClick=${() => mark(it.id)}>False reject</button>`}
      </figure>`)}
    </div>
  </section>`;
}

function TokenBox({ control }) {
  const [has, setHas] = useState(!!sessionStorage.getItem(TOKEN_KEY));
  if (control === 'open') return null;
  if (control === 'read-only') return html`<p class="muted">Read-only: the console listens beyond loopback and no <code>console.token</code> is configured.</p>`;
  return html`<div class="row"><label>console token (kept in this tab only)
    <input type="password" autocomplete="off" onChange=${(e) => { sessionStorage.setItem(TOKEN_KEY, e.currentTarget.value); setHas(!!e.currentTarget.value); }} /></label>
    <span class="muted">${has ? 'token set' : 'needed for capture, false reject and threshold'}</span></div>`;
}

function App() {
  const [state, setState] = useState(null);
  const [error, setError] = useState('');
  const [selected, setSelected] = useState('');
  usePoll(async () => {
    try {
      const s = await getJson('/api/state');
      setState(s);
      setSelected((cur) => (cur && s.cameras.some((c) => c.camera === cur) ? cur : s.cameras[0]?.camera ?? ''));
    } catch (e) {
      setError(`daemon not reachable: ${e.message}`);
    }
  }, 1000, []);
  if (!state) return html`<main><p class="muted">Connecting to the daemon…</p>${error && html`<p class="error">${error}</p>`}</main>`;
  const cam = state.cameras.find((c) => c.camera === selected);
  return html`<${Header} state=${state} />
    <main>
      ${error && html`<div class="error" data-testid="error">${error}</div>`}
      <${TokenBox} control=${state.control} />
      <${Overview} cameras=${state.cameras} selected=${selected} onSelect=${setSelected} />
      ${cam && html`<section class="card grid2" key=${cam.camera}>
        <${LiveView} camera=${cam.camera} />
        <div>
          <${Trend} camera=${cam.camera} seconds=${Math.min(300, state.trendSeconds ?? 300)} />
          <${Capture} camera=${cam.camera} status=${cam.capture} control=${state.control} onError=${setError} />
          <${Threshold} camera=${cam.camera} threshold=${cam.threshold} control=${state.control} onError=${setError} />
        </div>
      </section>
      <${NgReview} key=${`ng-${cam.camera}`} camera=${cam.camera} control=${state.control} onError=${setError} />`}
    </main>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the no-JavaScript note
render(html`<${App} />`, root);
