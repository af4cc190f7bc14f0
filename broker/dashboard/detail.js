// One execution (its fields, payload, step ledger and history) or one
// recurring cue (its schedule, next fires and last fires).
import { $, UNFINISHED, el, badge, mono, when, duration, relative, count, seg, flash } from './dom.js';
import { api } from './api.js';
import { view, nav, link, go } from './nav.js';
import { execLink, schedule, nextFires } from './lists.js';

let detailKey = null; // what the card shows, so a poll that changes nothing redraws nothing

// The next load draws the card even when nothing changed (after an action).
export function resetDetail() {
  detailKey = null;
}

function field(dl, name, value) {
  if (value === undefined || value === null || value === '') return;
  dl.append(el('dt', null, name), el('dd', null, value));
}

function payloadOf(obj) {
  if (typeof obj.payload === 'string') return obj.payload === '' ? null : obj.payload;
  if (typeof obj.payload_base64 === 'string') return '(not UTF-8; base64) ' + obj.payload_base64;
  return null;
}

function showPayload(obj) {
  const p = payloadOf(obj);
  const pre = $('detail-payload');
  pre.textContent = p === null ? '(empty)' : p;
  pre.classList.toggle('muted', p === null);
}

function renderExecution(e) {
  $('detail-title').replaceChildren('Execution ', mono(e.execution_id));
  $('detail-state').replaceChildren(badge(e.state));
  $('detail-retry').hidden = e.state !== 'dead';
  $('detail-retry').setAttribute('data-id', e.execution_id);
  $('detail-cancel').hidden = !UNFINISHED.has(e.state);
  $('detail-cancel').setAttribute('data-id', e.execution_id);
  $('detail-cancel').setAttribute('data-action', 'cancel');
  const dl = $('detail-fields');
  dl.replaceChildren();
  field(dl, 'Queue', el('a', { href: link({ q: e.queue, tab: 'executions', state: '', after: '' }) }, e.queue));
  if (e.cue_id && e.cue_id !== e.execution_id) field(dl, 'Recurring cue', execLink(e.cue_id));
  field(dl, 'Attempt', `${count(e.attempt)} (failures ${count(e.failures)} of ${count(e.max_attempts)}, ` +
    `expiries ${count(e.expiries)} of ${count(e.max_expiries)})`);
  field(dl, 'Priority', count(e.priority));
  if (e.lease_ms !== undefined && e.lease_ms !== null) field(dl, 'Lease length', duration(e.lease_ms));
  field(dl, 'Reason', e.reason);
  field(dl, 'Error', e.error ? el('span', { class: 'err' }, e.error) : null);
  field(dl, 'Result', e.result);
  field(dl, 'Unique key', e.unique ? mono(e.unique) : null);
  field(dl, 'Group', e.group);
  field(dl, 'Created', when(e.created_at));
  field(dl, 'Run at', when(e.run_at));
  if (e.lease_deadline) field(dl, 'Lease ends', el('span', null, when(e.lease_deadline), ' ', el('span', { class: 'muted' }, relative(e.lease_deadline))));
  field(dl, 'Lease token', e.lease_token ? mono(e.lease_token) : null);
  if (e.finished_at) field(dl, 'Finished', when(e.finished_at));
  showPayload(e);

  const steps = e.steps || [];
  const sb = $('detail-steps').tBodies[0];
  sb.replaceChildren(...steps.map((s) => el('tr', { 'data-step': s.name },
    el('td', null, mono(s.name)),
    el('td', null, mono(typeof s.value === 'string' ? s.value : s.value_base64 !== undefined ? '(base64) ' + s.value_base64 : '')),
    el('td', null, when(s.at, true)))));
  $('detail-steps').hidden = steps.length === 0;
  $('detail-steps-empty').hidden = steps.length > 0;
  $('detail-steps-wrap').hidden = false;

  const hist = e.history || [];
  const hb = $('detail-history').tBodies[0];
  hb.replaceChildren(...hist.map((h) => el('tr', { 'data-event': h.event },
    el('td', null, when(h.at, true)),
    el('td', null, el('span', { class: 'badge state-' + eventClass(h.event) }, h.event)),
    el('td', { class: 'num' }, h.attempt !== undefined && h.attempt !== null ? count(h.attempt) : ''),
    el('td', null, h.lease_token ? mono(h.lease_token) : ''),
    el('td', null, h.detail || ''))));
  $('detail-history-wrap').hidden = false;
  const note = $('detail-history-note');
  note.hidden = !e.history_dropped && hist.length > 0;
  note.textContent = e.history_dropped ? `${count(e.history_dropped)} older events are no longer kept.`
    : 'Nothing has happened to it since it was pushed.';
  $('detail-fires-wrap').hidden = true;
}

// History events coloured like the state they lead to.
function eventClass(ev) {
  switch (ev) {
    case 'claimed': case 'extended': return 'leased';
    case 'expired': case 'released': case 'retried': return 'ready';
    case 'nacked': return 'scheduled';
    case 'succeeded': case 'dead': case 'cancelled': return ev;
    default: return 'gone';
  }
}

function renderCue(c) {
  $('detail-title').replaceChildren('Recurring cue ', mono(c.cue_id));
  $('detail-state').replaceChildren(badge(c.state));
  $('detail-retry').hidden = true;
  $('detail-cancel').hidden = c.state !== 'active';
  $('detail-cancel').setAttribute('data-id', c.cue_id);
  $('detail-cancel').setAttribute('data-action', 'cancel-cue');
  const dl = $('detail-fields');
  dl.replaceChildren();
  field(dl, 'Queue', el('a', { href: link({ q: c.queue, tab: 'cues', state: '', after: '' }) }, c.queue));
  field(dl, 'Schedule', schedule(c));
  field(dl, 'Catch up', c.catch_up);
  field(dl, 'Overlap', c.overlap);
  field(dl, 'Fires', `${count(c.fires)} made, ${count(c.skipped)} skipped`);
  field(dl, 'Next fires', nextFires(c.next_fires, 5));
  field(dl, 'Priority', count(c.priority));
  field(dl, 'Attempts', `${count(c.max_attempts)} failures, ${count(c.max_expiries)} expiries at most`);
  if (c.lease_ms !== undefined && c.lease_ms !== null) field(dl, 'Lease length', duration(c.lease_ms));
  field(dl, 'Created', when(c.created_at));
  showPayload(c);
  $('detail-steps-wrap').hidden = true;
  $('detail-history-wrap').hidden = true;
  const ex = c.executions || [];
  $('detail-fires').tBodies[0].replaceChildren(...ex.map((x) => el('tr', null,
    el('td', null, x.state === 'gone' ? mono(x.execution_id) : execLink(x.execution_id)),
    el('td', null, when(x.fire_at, true)),
    el('td', null, badge(x.state)))));
  $('detail-fires-wrap').hidden = ex.length === 0;
}

export async function loadDetail(g) {
  const id = view.x;
  let r;
  try {
    r = await api('GET', `/v1/executions/${seg(id)}`);
  } catch (e) {
    if (g !== nav.gen) return;
    if (e.status === 404 || e.status === 400) {
      detailKey = null;
      $('detail-card').hidden = true;
      layout();
      flash(e.message, 'error');
      go({ x: null }, true);
      return;
    }
    throw e;
  }
  if (g !== nav.gen) return;
  const obj = r.execution || r.cue;
  if (!obj) return;
  // Opened by ID alone: show its queue beside it.
  if (!view.q && obj.queue) {
    go({ q: obj.queue, tab: r.cue ? 'cues' : 'executions', state: '', after: '' }, true);
    return;
  }
  const key = JSON.stringify(r) + (r.cue ? Math.floor(Date.now() / 10000) : '');
  if (key === detailKey) return;
  detailKey = key;
  if (r.execution) renderExecution(r.execution);
  else renderCue(r.cue);
  $('detail-card').hidden = false;
  layout();
}

export function layout() {
  const two = !$('queue-card').hidden && !$('detail-card').hidden;
  document.querySelector('.panes').classList.toggle('two', two);
}
