// The open queue's tabs: its executions by state, its dead letters, its
// recurring cues with their next fires.
import { $, el, badge, mono, when, duration, relative, count, seg } from './dom.js';
import { api } from './api.js';
import { view, nav, link } from './nav.js';
import { stats } from './queues.js';

const PAGE = 50;

// Rows are kept by key while their data stays the same: a poll redraws
// only rows that changed, so a row under the pointer is not swapped for a
// copy between a press and its release (which would lose the click).
const rowCache = new WeakMap(); // tbody -> Map(key -> {sig, tr})

function syncRows(body, items, keyOf, render, sigExtra) {
  let cache = rowCache.get(body);
  if (!cache) rowCache.set(body, (cache = new Map()));
  const next = new Map();
  const trs = items.map((it) => {
    const key = keyOf(it);
    const sig = JSON.stringify(it) + (sigExtra || '');
    const had = cache.get(key);
    const tr = had && had.sig === sig ? had.tr : render(it);
    next.set(key, { sig, tr });
    tr.classList.toggle('selected', key === view.x);
    return tr;
  });
  rowCache.set(body, next);
  const same = trs.length === body.children.length && trs.every((tr, i) => body.children[i] === tr);
  if (!same) body.replaceChildren(...trs);
}

// What a list showed belongs to the view it was loaded for: a new view
// starts empty rather than with another state's or page's rows.
export function clearLists() {
  for (const id of ['executions-body', 'dead-body', 'cues-body']) {
    $(id).replaceChildren();
    rowCache.delete($(id));
  }
}

export function execLink(id, text) {
  return el('a', { href: link({ x: id }), class: 'mono', 'data-action': 'open-execution', 'data-id': id },
    text || id);
}

export async function loadExecutions(g) {
  let path = `/v1/queues/${seg(view.q)}/executions?limit=${PAGE}`;
  if (view.state) path += '&state=' + encodeURIComponent(view.state);
  if (view.after) path += '&after=' + encodeURIComponent(view.after);
  const r = await api('GET', path);
  if (g !== nav.gen) return;
  const list = r.executions || [];
  syncRows($('executions-body'), list, (e) => e.execution_id, (e) => {
    const what = e.error || e.reason || e.result;
    return el('tr', { 'data-execution-id': e.execution_id },
      el('td', null, execLink(e.execution_id)),
      el('td', null, badge(e.state)),
      el('td', { class: 'num' }, count(e.attempt)),
      el('td', null, when(e.created_at, true)),
      el('td', null, when(e.run_at, true)),
      el('td', { class: e.error || e.state === 'dead' ? 'err' : 'muted', title: what || null }, what || ''));
  });
  $('executions-empty').hidden = list.length > 0;
  $('exec-next').hidden = !r.next;
  $('exec-next').dataset.after = r.next || '';
  $('exec-first').hidden = !view.after;
}

export async function loadDead(g) {
  let path = `/v1/queues/${seg(view.q)}/executions?state=dead&limit=${PAGE}`;
  if (view.after) path += '&after=' + encodeURIComponent(view.after);
  const r = await api('GET', path);
  if (g !== nav.gen) return;
  const list = r.executions || [];
  syncRows($('dead-body'), list, (e) => e.execution_id, (e) => {
    const why = [e.reason, e.error].filter(Boolean).join(': ');
    return el('tr', { 'data-execution-id': e.execution_id },
      el('td', null, execLink(e.execution_id)),
      el('td', { class: 'num' }, count(e.attempt)),
      el('td', null, when(e.finished_at, true)),
      el('td', { class: 'err', title: why || null }, why),
      el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'small', 'data-action': 'retry', 'data-id': e.execution_id }, 'Retry')));
  });
  const none = list.length === 0;
  $('dead-empty').hidden = !none;
  $('dead').hidden = none;
  $('retry-all').disabled = none;
  $('purge-dead').disabled = none;
  $('dead-next').hidden = !r.next;
  $('dead-next').dataset.after = r.next || '';
}

export function schedule(c) {
  if (c.every_ms !== undefined && c.every_ms !== null) return 'every ' + duration(c.every_ms);
  if (c.cron) {
    return el('span', null, el('span', { class: 'nowrap' }, 'cron ', mono(c.cron)), el('br'),
      el('span', { class: 'muted small' }, c.tz || 'UTC'));
  }
  return '—';
}

export function nextFires(list, n, short) {
  const box = el('div', { class: 'fires' });
  for (const t of (list || []).slice(0, n)) {
    box.append(el('span', null, when(t, short), ' ', el('span', { class: 'rel' }, relative(t))));
  }
  if (!box.firstChild) box.append(el('span', { class: 'muted' }, '—'));
  return box;
}

export async function loadCues(g) {
  const r = await api('GET', `/v1/queues/${seg(view.q)}/cues`);
  if (g !== nav.gen) return;
  const list = r.cues || [];
  // "in 4m" ages: each row is drawn again every ten seconds.
  syncRows($('cues-body'), list, (c) => c.cue_id, (c) => {
    const lastExec = (c.executions || [])[0];
    return el('tr', { 'data-cue-id': c.cue_id },
      el('td', null, el('div', null, execLink(c.cue_id)), el('div', null, badge(c.state))),
      el('td', null, schedule(c)),
      el('td', { class: 'num', title: c.skipped ? `${count(c.skipped)} skipped` : null }, count(c.fires)),
      el('td', { 'data-field': 'next-fires' }, nextFires(c.next_fires, 3, true)),
      el('td', null, lastExec
        ? [el('div', null, execLink(lastExec.execution_id)), el('div', null, badge(lastExec.state))]
        : el('span', { class: 'muted' }, '—')),
      el('td', { class: 'actions' }, c.state === 'active'
        ? el('button', { type: 'button', class: 'small danger', 'data-action': 'cancel-cue', 'data-id': c.cue_id }, 'Cancel')
        : null));
  }, String(Math.floor(Date.now() / 10000)));
  $('cues-empty').hidden = list.length > 0;
  $('cues').hidden = list.length === 0;
}

export function renderQueueHead() {
  const q = stats.get(view.q);
  $('queue-title').textContent = view.q;
  $('queue-paused').hidden = !(q && q.paused);
  const pb = $('queue-pause');
  pb.hidden = !q;
  pb.textContent = q && q.paused ? 'Resume queue' : 'Pause queue';
  pb.setAttribute('data-action', q && q.paused ? 'resume' : 'pause');
  pb.setAttribute('data-queue', view.q);
  const dead = q ? Number(q.dead) || 0 : 0;
  $('dead-count').textContent = q ? count(dead) : '';
  $('dead-count').classList.toggle('hot', dead > 0);
  $('cues-count').textContent = q ? count(q.cues) : '';
  for (const b of document.querySelectorAll('.tabs [data-tab]')) {
    b.setAttribute('aria-selected', String(b.dataset.tab === view.tab));
  }
  for (const t of ['executions', 'dead', 'cues']) $('tab-' + t).hidden = t !== view.tab;
  $('exec-state').value = view.state;
}
