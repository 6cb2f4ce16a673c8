// The operator console's page: preact + htm (no build step; both served by the daemon from node_modules).
// Everything is polled from the daemon's /api while the page is open and visible; nothing is pushed.
import { h, render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
const enc = encodeURIComponent;
const LIVE_MIN_INTERVAL_MS = 250; // up to 4 fps, never faster than the daemon renders
const TOKEN_KEY = 'etstpm-console-token';
// A stopped daemon (SIGSTOP, hung) still accepts connections in the kernel but never answers: without a timeout a
// poll would wait forever and the page would keep showing the last answer as if it were current.
const REQUEST_TIMEOUT_MS = 4000;

/** fetch with REQUEST_TIMEOUT_MS. @param {string} url @param {RequestInit} init */
async function fetchT(url, init = {}) {
  const ac = new AbortController();
  const timer = window.setTimeout(() => ac.abort(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
  try {
    return await fetch(url, { ...init, signal: ac.signal });
  } catch (e) {
    throw new Error(ac.signal.aborted ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : e.message || String(e), { cause: e });
  } finally {
    clearTimeout(timer);
  }
}

/** @param {string} url */
async function getJson(url) {
  const r = await fetchT(url, { cache: 'no-store' });
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
  const r = await fetchT(url, { method: 'POST', headers, body: JSON.stringify(body) });
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
/** The model's raw score on its own scale (unbounded): 4 significant digits. */
const fmtRaw = (x) => (Number.isFinite(x) ? (x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toPrecision(4)) : '-');
const driftTitle = (d) => (d ? `${d.frames}/${d.window} OK frames; share at or above the calibration quantile ${fmtRaw(d.reference)}`
  + `${d.expectedShare === null ? '' : `, expected ≤ ${(100 * d.expectedShare).toFixed(1)} %`}; warning at ${(100 * d.warnShare).toFixed(1)} % (docs/daemon.md, Drift)` : '');
const fmtUptime = (s) => `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ${s % 60}s`;

const HEALTH_BADGE = { ok: ['ok', 'ok'], degraded: ['degraded', 'warn'], unhealthy: ['not ok', 'ng'] };

/** The daemon's /healthz verdict (one set of rules: docs/daemon.md, "/healthz"); grey while the daemon is unreachable. */
function Header({ state, unreachable }) {
  const hl = state.health;
  const status = hl.status ?? (hl.ok ? 'ok' : 'unhealthy');
  const [label, cls] = unreachable ? ['unknown', 'stale'] : HEALTH_BADGE[status] ?? HEALTH_BADGE.unhealthy;
  return html`<header>
    <h1>etstpm-edge</h1>
    <span class="kv" data-testid="health" data-status=${unreachable ? 'unknown' : status}>health <span class=${`badge ${cls}`}>${label}</span></span>
    <span class="kv">MQTT <span class=${`badge ${hl.mqttConnected ? 'up' : 'down'}`}>${hl.mqttConnected ? 'up' : 'down'}</span></span>
    <span class="kv">provider <b>${hl.provider ?? '-'}</b></span>
    <span class="kv">model <b>${state.model.name}</b> ${state.model.version}</span>
    <span class="kv">${state.model.method}</span>
    <span class="kv">uptime <b>${fmtUptime(hl.uptimeS ?? state.uptimeS)}</b></span>
  </header>`;
}

/** Modbus links (one per PLC, with the cameras whose rejects they carry) from /healthz's per-camera outputs. */
function plcLinks(modbus) {
  const links = new Map();
  for (const [cam, o] of Object.entries(modbus ?? {})) {
    const l = links.get(o.plc) ?? { plc: o.plc, link: o.link, cameras: [], written: 0, dropped: 0, lastError: o.lastError };
    l.cameras.push(cam);
    l.written += o.written;
    l.dropped += o.dropped;
    links.set(o.plc, l);
  }
  return [...links.values()];
}

const LINK_CLASS = { up: 'up', connecting: 'warn', down: 'down' };

/** Why health is not ok (red) or degraded (amber), and the PLC / Sparkplug links. */
function HealthPanel({ health }) {
  const status = health.status ?? (health.ok ? 'ok' : 'unhealthy');
  const problems = status === 'unhealthy' ? [health.reason, ...(health.degraded ?? [])] : health.degraded ?? [];
  const links = plcLinks(health.modbus);
  const sp = health.sparkplug;
  if (problems.length === 0 && links.length === 0 && !sp) return null;
  return html`<section class=${`card health ${status}`} data-testid="health-panel">
    ${problems.length > 0 && html`<ul class="problems" data-testid="problems">
      ${problems.filter(Boolean).map((p, i) => html`<li key=${i} class=${status === 'unhealthy' && i === 0 ? 'ng' : 'warn'}>${p}</li>`)}</ul>`}
    ${(links.length > 0 || sp) && html`<div class="links" data-testid="links">
      ${links.map((l) => html`<span class="link" data-testid="plc-link" data-plc=${l.plc} data-state=${l.link}>PLC <b>${l.plc}</b>
        <span class=${`badge ${LINK_CLASS[l.link] ?? 'down'}`}>${l.link}</span>
        <span class="muted">${l.cameras.join(', ')}: ${l.written} written, ${l.dropped} dropped${l.lastError ? ` · ${l.lastError}` : ''}</span></span>`)}
      ${sp && html`<span class="link" data-testid="sparkplug-link" data-state=${sp.connected ? 'up' : 'down'}>Sparkplug
        <span class=${`badge ${sp.connected ? 'up' : 'down'}`}>${sp.connected ? (sp.born ? 'up' : 'connected') : 'down'}</span>
        ${sp.primaryHost && html`<span class="muted">primary host ${sp.primaryHost.id} ${sp.primaryHost.online ? 'online' : 'offline'}</span>`}</span>`}
    </div>`}
  </section>`;
}

function Overview({ cameras, selected, onSelect }) {
  return html`<section class="card" data-testid="overview">
    <h2>Cameras</h2>
    <div class="table-wrap"><table>
      <thead><tr><th>camera</th><th>state</th><th class="num">fps</th><th class="num">captured</th><th class="num">processed</th>
        <th class="num">dropped</th><th class="num">NG</th><th>model</th><th class="num">threshold</th><th class="num">drift</th><th>PLC</th><th>capture</th></tr></thead>
      <tbody>
        ${cameras.map((c) => [html`<tr key=${c.camera} class=${`cam ${c.camera === selected ? 'selected' : ''}`} data-camera=${c.camera}
            onClick=${() => onSelect(c.camera)} title="show this camera below">
          <td><b>${c.camera}</b></td>
          <td><span class=${`badge ${c.state}`} data-testid="camera-state">${c.state}</span></td>
          <td class="num">${c.fps.toFixed(1)}</td><td class="num">${c.captured}</td><td class="num">${c.processed}</td>
          <td class="num">${c.dropped}</td><td class="num" data-testid="ng-count">${c.ng}</td>
          <td class="model">${c.model.name}<br /><span class="muted" title=${c.model.version}>${c.model.version}</span> <span class="muted">${c.provider}</span></td>
          <td class="num" data-testid="threshold">${c.threshold ? html`${fmtRaw(c.threshold.raw)}<br /><span class="muted">${c.threshold.source}</span>` : '-'}</td>
          <td class="num" data-testid="drift" title=${driftTitle(c.drift)}>${c.drift && c.drift.share !== null
            ? html`<span class=${c.drift.drifting ? 'badge ng' : ''}>${(100 * c.drift.share).toFixed(1)} %</span>` : '-'}</td>
          <td>${c.plc ? html`<span class=${`badge ${LINK_CLASS[c.plc.link] ?? 'down'}`} title=${c.plc.plc}>${c.plc.link}</span><br /><span class="muted">${c.plc.dropped} dropped</span>` : html`<span class="muted">-</span>`}</td>
          <td><span class=${`badge ${c.capture.state}`}>${c.capture.state}</span></td>
        </tr>`, c.error && html`<tr key=${`${c.camera}-error`} class="cam-error" data-camera=${c.camera}><td></td>
          <td colspan="11" class="muted" data-testid="camera-error">${c.error}</td></tr>`])}
      </tbody>
    </table></div>
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
          const r = await fetchT(`/api/cameras/${enc(camera)}/live.jpg`, { cache: 'no-store' });
          if (r.ok) {
            const blob = await r.blob();
            if (stop) return;
            const next = URL.createObjectURL(blob);
            setSrc(next);
            if (url) URL.revokeObjectURL(url);
            url = next;
            setMeta({ seq: r.headers.get('x-seq'), score: Number(r.headers.get('x-score')), raw: Number(r.headers.get('x-raw-score')),
              rawThreshold: Number(r.headers.get('x-raw-threshold')), verdict: r.headers.get('x-verdict'), at: Number(r.headers.get('x-captured-at')) });
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
      <span data-testid="live-raw">raw <b>${fmtRaw(meta.raw)}</b> (threshold ${fmtRaw(meta.rawThreshold)})</span>
      <span class="muted">frame ${meta.seq} · ${fmtTime(meta.at)}</span></div>`}
    <p class="muted">Red: anomaly heat map (from half-way below the threshold); yellow: outline of the predicted defect (map ≥ threshold).</p>
  </div>`;
}

function Trend({ camera, seconds }) {
  const ref = useRef(null);
  const last = useRef(null);
  const [n, setN] = useState(0);
  usePoll(async () => {
    const d = await getJson(`/api/cameras/${enc(camera)}/trend?seconds=${seconds}`);
    last.current = d;
    setN(d.t.length);
    draw(ref.current, d, seconds);
  }, 2000, [camera, seconds]);
  // The canvas follows its container's width (window resized, layout wrapped): redraw at the new size at once.
  useEffect(() => {
    const c = ref.current;
    if (!c || !window.ResizeObserver) return undefined;
    const ro = new window.ResizeObserver(() => last.current && draw(c, last.current, seconds));
    ro.observe(c);
    return () => ro.disconnect();
  }, [seconds]);
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
  const [order, setOrder] = useState('newest');
  const load = useCallback(async () => {
    const d = await getJson(`/api/cameras/${enc(camera)}/ng?order=${order}`);
    setItems(d.items);
    setKept(d.kept);
  }, [camera, order]);
  usePoll(load, 2000, [camera, order]);
  const mark = (id) => postJson(`/api/cameras/${enc(camera)}/ng/${id}/false-reject`).then(() => { onError(''); return load(); }, (e) => onError(`false reject: ${e.message}`));
  return html`<section class="card" data-testid="ng-review">
    <h2>NG review: ${camera} <span class="muted">(last ${kept} kept in memory)</span></h2>
    <div class="row" data-testid="ng-order" data-order=${order}>
      <label>order <select value=${order} onChange=${(e) => setOrder(e.currentTarget.value)} data-testid="ng-order-select">
        <option value="newest">newest first</option>
        <option value="raw">highest raw score first</option>
      </select></label>
      <span class="muted">The score 0..1 is clamped: clear defects all show 1.000; the model's raw score ranks them.</span>
    </div>
    ${items.length === 0 ? html`<p class="muted">No NG frame yet.</p>` : ''}
    <div class="ngs">
      ${items.map((it) => html`<figure key=${it.id} data-testid="ng-item" data-id=${it.id}>
        <img loading="lazy" src=${`/api/cameras/${enc(camera)}/ng/${it.id}.jpg`} alt=${`NG frame ${it.seq}`} />
        <figcaption>${fmtTime(it.capturedAt)} · frame ${it.seq}<br />score <b>${it.score.toFixed(3)}</b>${' '}
          · raw <b data-testid="ng-raw" data-raw=${it.rawScore}>${fmtRaw(it.rawScore)}</b></figcaption>
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

const fmtClock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });

function App() {
  const [state, setState] = useState(null);
  // What an action (capture, false reject) was refused with; cleared by the next action that works, or by hand.
  const [error, setError] = useState('');
  // Polls failing: since when, why, and when the data shown was last fresh. Cleared by the first answer.
  const [down, setDown] = useState(null);
  const [lastData, setLastData] = useState(0);
  const [selected, setSelected] = useState('');
  usePoll(async () => {
    try {
      const s = await getJson('/api/state');
      setState(s);
      setLastData(Date.now());
      setDown(null);
      setSelected((cur) => (cur && s.cameras.some((c) => c.camera === cur) ? cur : s.cameras[0]?.camera ?? ''));
    } catch (e) {
      setDown((d) => d ?? { since: Date.now(), why: e.message });
    }
  }, 1000, []);
  useEffect(() => {
    document.body.classList.toggle('stale', !!down && !!state);
  }, [down, state]);
  const banner = down && html`<div class="unreachable" data-testid="stale" role="alert">
    daemon unreachable since <b>${fmtClock(down.since)}</b> (${down.why})${lastData ? html`; last data <b>${fmtClock(lastData)}</b>: everything below is as of then` : ''}</div>`;
  if (!state) return html`<main><p class="muted">Connecting to the daemon…</p>${banner}</main>`;
  const cam = state.cameras.find((c) => c.camera === selected);
  return html`<${Header} state=${state} unreachable=${!!down} />
    ${banner}
    <main>
      ${error && html`<div class="error" data-testid="error">${error} <button class="link" onClick=${() => setError('')} title="dismiss">×</button></div>`}
      <${TokenBox} control=${state.control} />
      <${HealthPanel} health=${state.health} />
      <${Overview} cameras=${state.cameras} selected=${selected} onSelect=${setSelected} />
      ${cam && html`<section class="card grid2" key=${cam.camera}>
        <${LiveView} camera=${cam.camera} />
        <div class="side">
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
