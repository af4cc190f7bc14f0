// DOM builders and formats shared by the dashboard's modules.  Every value
// from the broker goes in through these as text (text nodes, textContent,
// setAttribute), never as markup: payloads, errors and step values are
// whatever a producer or worker wrote.

export const STATES = ['scheduled', 'ready', 'leased', 'succeeded', 'dead', 'cancelled'];
export const UNFINISHED = new Set(['scheduled', 'ready', 'leased']);
const SVG_NS = 'http://www.w3.org/2000/svg';

export const $ = (id) => document.getElementById(id);


// el('td', {class: 'num'}, 'text', node...): attributes are set with
// setAttribute and children are text nodes or nodes, so data stays data.
export function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'onclick') e.addEventListener('click', v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

export function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

export function badge(state) {
  return el('span', { class: 'badge state-' + String(state).replace(/[^a-z]/g, '') }, state);
}

export function mono(text) {
  return el('span', { class: 'mono' }, text);
}

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

// Unix ms as a local date, with the UTC instant on hover.  Short, for
// tables: today's times without the day, this year's without the year.
export function when(ms, short) {
  if (ms === undefined || ms === null) return el('span', { class: 'muted' }, '—');
  const d = new Date(Number(ms));
  if (!Number.isFinite(d.getTime())) return String(ms);
  let fmt = dateFmt;
  if (short) {
    const now = new Date();
    if (d.toDateString() === now.toDateString()) fmt = timeFmt;
    else if (d.getFullYear() === now.getFullYear()) fmt = dayFmt;
  }
  return el('time', { datetime: d.toISOString(), title: dateFmt.format(d) + ' (' + d.toISOString() + ')' },
    fmt.format(d));
}

export function duration(ms) {
  ms = Math.abs(Math.round(Number(ms)));
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1000) return ms + 'ms';
  const units = [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]];
  const out = [];
  for (const [u, n] of units) {
    if (ms >= n && out.length < 2) {
      out.push(Math.floor(ms / n) + u);
      ms %= n;
    } else if (out.length) break;
  }
  return out.join(' ');
}

export function relative(ms) {
  const d = Number(ms) - Date.now();
  if (Math.abs(d) < 1000) return 'now';
  return d > 0 ? 'in ' + duration(d) : duration(d) + ' ago';
}

export function count(n) {
  return Number(n || 0).toLocaleString();
}

export function rate(r) {
  if (!Number.isFinite(r)) return '—';
  return (r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString()) + '/s';
}

// Queue names are [A-Za-z0-9._:-] and IDs hex, but encode anyway: a hash
// someone edited must not reach another path.
export function seg(s) {
  return encodeURIComponent(s).replace(/%3A/gi, ':');
}


// ------------------------------------------------------------- flash

let flashTimer = null;

export function flash(msg, kind) {
  const f = $('flash');
  f.textContent = msg;
  f.className = 'flash' + (kind === 'error' ? ' error' : '');
  f.dataset.kind = kind || 'ok';
  f.hidden = false;
  clearTimeout(flashTimer);
  if (kind !== 'error') flashTimer = setTimeout(() => { f.hidden = true; }, 8000);
}
