// The queue table: stats polled by app.js, the last two minutes of them
// kept in the page for the sparklines (claims per second from the growth
// of `deliveries` between polls).  Rows are made once per queue and updated
// in place, so a click on one is never lost to a redraw.
import { $, STATES, el, svg, count, rate } from './dom.js';
import { api } from './api.js';
import { view, link } from './nav.js';

const SAMPLES = 60; // two minutes of polls

export const stats = new Map(); // queue -> its last stats map
const samples = new Map(); // queue -> [{t, ready, leased, claims}]
export const rows = new Map(); // queue -> {tr, cells}

export async function fetchQueues() {
  const all = [];
  let from = null;
  for (let page = 0; page < 100; page++) {
    const r = await api('GET', '/v1/queues?limit=1000' + (from !== null ? '&from=' + encodeURIComponent(from) : ''));
    all.push(...(r.queues || []));
    if (r.next === null || r.next === undefined) break;
    from = r.next;
  }
  return all;
}

export function record(list, t) {
  const seen = new Set();
  for (const q of list) {
    seen.add(q.queue);
    let s = samples.get(q.queue);
    if (!s) samples.set(q.queue, (s = []));
    const prev = s[s.length - 1];
    let claims = NaN;
    if (prev && t > prev.t) {
      // A queue that was forgotten starts its totals over: no negative rates.
      claims = Math.max(0, (Number(q.deliveries) - prev.deliveries) / ((t - prev.t) / 1000));
    }
    s.push({ t, ready: Number(q.ready) || 0, leased: Number(q.leased) || 0,
      deliveries: Number(q.deliveries) || 0, claims });
    if (s.length > SAMPLES) s.shift();
    stats.set(q.queue, q);
  }
  for (const name of [...stats.keys()]) {
    if (!seen.has(name)) {
      stats.delete(name);
      samples.delete(name);
    }
  }
}

// A sparkline: each series a polyline over the last SAMPLES polls, on one
// scale starting at zero.  Areas under a series are drawn when asked.
function drawSpark(node, series, title) {
  const W = 120, H = 28, P = 2;
  node.replaceChildren();
  node.append(svg('line', { class: 'base', x1: 0, y1: H - P + 0.5, x2: W, y2: H - P + 0.5 }));
  let max = 1, n = 0;
  for (const s of series) {
    const finite = s.values.filter(Number.isFinite);
    for (const v of finite) max = Math.max(max, v);
    n = Math.max(n, finite.length);
  }
  // The samples so far span the width: a page opened a moment ago shows
  // its few polls as a line, not as a dot at the right edge.
  const x = (i) => P + i * ((W - 2 * P) / Math.max(1, n - 1));
  const y = (v) => H - P - (v / max) * (H - 2 * P);
  for (const s of series) {
    const pts = s.values.filter(Number.isFinite).map((v, i) => [x(i), y(v)]);
    if (pts.length < 2) continue;
    const str = pts.map(([a, b]) => a.toFixed(1) + ',' + b.toFixed(1)).join(' ');
    if (s.area) {
      const first = pts[0][0].toFixed(1), last = pts[pts.length - 1][0].toFixed(1);
      node.append(svg('polygon', { class: s.area, points: `${first},${H - P} ${str} ${last},${H - P}` }));
    }
    node.append(svg('polyline', { class: s.cls, points: str }));
  }
  const t = svg('title');
  t.textContent = title;
  node.append(t);
  node.setAttribute('data-points', String(n));
}

function makeRow(name) {
  const cells = {};
  const tr = el('tr', { 'data-queue': name });
  const open = el('a', { href: link({ q: name, tab: 'executions', state: '', after: '', x: null }),
    class: 'qname', 'data-action': 'open-queue', 'data-queue': name }, name);
  cells.paused = el('span', { class: 'badge state-paused', hidden: true }, 'paused');
  tr.append(el('th', { scope: 'row' }, open, ' ', cells.paused));
  for (const st of STATES) {
    const a = el('a', { href: link({ q: name, tab: st === 'dead' ? 'dead' : 'executions',
      state: st === 'dead' ? '' : st, after: '', x: null }) });
    cells[st] = el('td', { class: 'num', 'data-field': st }, a);
  }
  cells.cues = el('td', { class: 'num', 'data-field': 'cues' },
    el('a', { href: link({ q: name, tab: 'cues', state: '', after: '', x: null }) }));
  tr.append(...STATES.map((st) => cells[st]), cells.cues);
  cells.sparkRL = svg('svg', { class: 'spark', width: 120, height: 28, viewBox: '0 0 120 28',
    'data-spark': 'ready-leased', role: 'img', 'aria-label': 'ready and leased over time' });
  cells.rl = el('span', { class: 'sparkval' });
  tr.append(el('td', null, el('div', { class: 'sparkcell' }, cells.sparkRL, cells.rl)));
  cells.sparkC = svg('svg', { class: 'spark', width: 120, height: 28, viewBox: '0 0 120 28',
    'data-spark': 'claims', role: 'img', 'aria-label': 'claims per second over time' });
  cells.rate = el('span', { class: 'sparkval', 'data-field': 'claims-rate' });
  tr.append(el('td', null, el('div', { class: 'sparkcell' }, cells.sparkC, cells.rate)));
  cells.totals = el('td', { class: 'num totals',
    title: 'deliveries since the queue was created, and of them the leases that expired, the handler failures and the leases released when a worker went away' });
  tr.append(cells.totals);
  cells.pause = el('button', { type: 'button', class: 'small', 'data-queue': name });
  tr.append(el('td', { class: 'actions' }, cells.pause));
  return { tr, cells };
}

export function renderQueues() {
  const body = $('queues-body');
  const names = [...stats.keys()].sort();
  for (const [name, r] of rows) {
    if (!stats.has(name)) {
      r.tr.remove();
      rows.delete(name);
    }
  }
  for (const name of names) {
    const q = stats.get(name);
    let r = rows.get(name);
    if (!r) rows.set(name, (r = makeRow(name)));
    body.append(r.tr); // keeps the nodes, puts them in name order
    const c = r.cells;
    for (const st of [...STATES, 'cues']) {
      const n = Number(q[st]) || 0;
      c[st].firstChild.textContent = count(n);
      c[st].classList.toggle('zero', n === 0);
      c[st].classList.toggle('c-' + st, n > 0 && st !== 'cues');
    }
    c.paused.hidden = !q.paused;
    c.pause.textContent = q.paused ? 'Resume' : 'Pause';
    c.pause.setAttribute('data-action', q.paused ? 'resume' : 'pause');
    const s = samples.get(name) || [];
    const last = s[s.length - 1] || {};
    drawSpark(c.sparkRL, [
      { values: s.map((v) => v.ready), cls: 'l-ready' },
      { values: s.map((v) => v.leased), cls: 'l-leased' },
    ], `ready ${count(last.ready)}, leased ${count(last.leased)}`);
    c.rl.textContent = `${count(last.ready)} / ${count(last.leased)}`;
    drawSpark(c.sparkC, [{ values: s.map((v) => v.claims), cls: 'l-claims', area: 'a-claims' }],
      `claims per second: ${rate(last.claims)}`);
    c.rate.textContent = rate(last.claims);
    const extra = [['expired', q.expiries], ['failed', q.failures], ['released', q.releases]]
      .filter(([, n]) => Number(n) > 0).map(([w, n]) => `${count(n)} ${w}`).join(', ');
    c.totals.replaceChildren(el('span', { 'data-field': 'deliveries' }, count(q.deliveries)),
      extra ? el('span', { class: 'extra' }, extra) : '');
    r.tr.classList.toggle('selected', view.q === name);
  }
  $('queues-empty').hidden = names.length > 0;
  $('queues').hidden = names.length === 0;
}
