// The cueq dashboard.  Plain JavaScript modules against the /v1 JSON API,
// no framework and no build step, so what cueqd embeds is what runs.
//
// Shape: the URL's hash holds what is being looked at (queue, tab, state
// filter, page, execution), so reloads, links and the back button work; a
// poll every two seconds reads the queues' stats, keeps the last two
// minutes of them in the page for the sparklines (claims per second come
// from the growth of `deliveries`), and refreshes whatever is open.  Every
// value from the broker reaches the DOM as text (textContent, text nodes,
// setAttribute), never as markup: payloads, errors and step values are
// whatever a producer or worker wrote.
import { $, count, seg, flash } from './dom.js';
import { api, TOKEN_KEY, updateSignout } from './api.js';
import { view, nav, readHash, go } from './nav.js';
import { rows, fetchQueues, record, renderQueues } from './queues.js';
import { clearLists, loadExecutions, loadDead, loadCues, renderQueueHead } from './lists.js';
import { loadDetail, layout, resetDetail } from './detail.js';

const POLL_MS = 2000;

// ------------------------------------------------------ refresh loop

async function refreshView(g) {
  const jobs = [];
  if (view.q) {
    renderQueueHead();
    if (view.tab === 'executions') jobs.push(loadExecutions(g));
    else if (view.tab === 'dead') jobs.push(loadDead(g));
    else jobs.push(loadCues(g));
  }
  if (view.x) jobs.push(loadDetail(g));
  const res = await Promise.allSettled(jobs);
  for (const r of res) if (r.status === 'rejected') throw r.reason;
}

let lastError = null;

async function refresh() {
  const g = nav.gen;
  try {
    const list = await fetchQueues();
    record(list, Date.now());
    renderQueues();
    await refreshView(g);
    $('queues-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    if (lastError) {
      lastError = null;
      setBroker();
    }
  } catch (e) {
    // Said once, not every poll; the header says it while it lasts.
    if (!lastError || lastError !== e.message) flash(e.message, 'error');
    lastError = e.message;
    if (e.status === 0) {
      $('broker').textContent = 'broker unreachable';
      $('broker').classList.add('down');
    }
  }
}

let pollTimer = null;

async function pollLoop() {
  clearTimeout(pollTimer);
  await refresh();
  pollTimer = setTimeout(pollLoop, POLL_MS);
}

let listView = null; // the queue, tab, state and page the lists were loaded for

function onHash() {
  readHash();
  nav.gen++;
  resetDetail();
  const lv = JSON.stringify([view.q, view.tab, view.state, view.after]);
  if (lv !== listView) {
    listView = lv;
    clearLists();
  }
  for (const tr of document.querySelectorAll('tr[data-execution-id], tr[data-cue-id]')) {
    tr.classList.toggle('selected', (tr.dataset.executionId || tr.dataset.cueId) === view.x);
  }
  $('queue-card').hidden = !view.q;
  if (!view.x) $('detail-card').hidden = true;
  layout();
  if (view.q) renderQueueHead();
  for (const [name, r] of rows) r.tr.classList.toggle('selected', view.q === name);
  const g = nav.gen;
  refreshView(g).catch((e) => flash(e.message, 'error'));
}

async function setBroker() {
  try {
    const p = await api('GET', '/v1/ping');
    const b = $('broker');
    b.classList.remove('down');
    b.textContent = `cueqd ${p.version || ''} · epoch ${p.epoch}`;
    b.title = 'broker clock: ' + new Date(Number(p.time)).toISOString();
  } catch (e) {
    $('broker').textContent = 'broker unreachable';
    $('broker').classList.add('down');
  }
}


// ------------------------------------------------------------ actions

async function retryAll(q) {
  let n = 0;
  for (let i = 0; i < 1000; i++) {
    const r = await api('POST', `/v1/queues/${seg(q)}/retry`);
    n += Number(r.retried) || 0;
    if (!r.more || !r.retried) break;
  }
  return n;
}

async function purgeDead(q) {
  let n = 0;
  for (let i = 0; i < 1000; i++) {
    const r = await api('POST', `/v1/queues/${seg(q)}/purge?state=dead`);
    n += Number(r.purged) || 0;
    if (!r.more) break;
  }
  return n;
}

const actions = {
  async retry(id) {
    await api('POST', `/v1/executions/${seg(id)}/retry`);
    flash(`Execution ${id} retried: it is ready again.`);
  },
  async cancel(id) {
    if (!confirm(`Cancel execution ${id}? A worker holding it loses its lease.`)) return;
    await api('POST', `/v1/executions/${seg(id)}/cancel`);
    flash(`Execution ${id} cancelled.`);
  },
  async 'cancel-cue'(id) {
    if (!confirm(`Stop recurring cue ${id}? Executions it made are not touched.`)) return;
    await api('POST', `/v1/executions/${seg(id)}/cancel`);
    flash(`Recurring cue ${id} cancelled: it fires no more.`);
  },
  async pause(_, q) {
    await api('POST', `/v1/queues/${seg(q)}/pause`);
    flash(`Queue ${q} paused: claims get nothing until it is resumed.`);
  },
  async resume(_, q) {
    await api('POST', `/v1/queues/${seg(q)}/resume`);
    flash(`Queue ${q} resumed.`);
  },
  async 'retry-all'() {
    const q = view.q;
    if (!confirm(`Retry every dead execution of ${q}?`)) return;
    const n = await retryAll(q);
    flash(`${count(n)} dead execution${n === 1 ? '' : 's'} of ${q} retried.`);
  },
  async purge() {
    const q = view.q;
    if (!confirm(`Delete every dead execution of ${q}, with its payload, history and steps? This cannot be undone.`)) return;
    const n = await purgeDead(q);
    flash(`${count(n)} dead execution${n === 1 ? '' : 's'} of ${q} purged.`);
  },
};

document.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b || b.disabled || !actions[b.dataset.action]) return;
  ev.preventDefault();
  b.disabled = true;
  try {
    await actions[b.dataset.action](b.dataset.id, b.dataset.queue);
    resetDetail();
    await refresh();
  } catch (e) {
    flash(e.message, 'error');
  } finally {
    b.disabled = false;
  }
});

// ------------------------------------------------------------- wiring

function isId(s) {
  return /^[0-9a-fA-F]{16}$/.test(s);
}

function start() {
  for (const b of document.querySelectorAll('.tabs [data-tab]')) {
    b.addEventListener('click', () => go({ tab: b.dataset.tab, state: '', after: '', x: view.x }));
  }
  $('exec-state').addEventListener('change', () => go({ state: $('exec-state').value, after: '' }));
  $('exec-filter').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('exec-search').value.trim();
    if (!id) return go({ state: $('exec-state').value, after: '' });
    if (!isId(id)) return flash('An execution ID is 16 hex digits.', 'error');
    go({ x: id.toLowerCase() });
  });
  $('goto').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('goto-id').value.trim();
    if (!isId(id)) return flash('An execution or cue ID is 16 hex digits.', 'error');
    go({ q: null, tab: 'executions', state: '', after: '', x: id.toLowerCase() });
  });
  $('exec-next').addEventListener('click', () => go({ after: $('exec-next').dataset.after }));
  $('exec-first').addEventListener('click', () => go({ after: '' }));
  $('dead-next').addEventListener('click', () => go({ after: $('dead-next').dataset.after }));
  $('detail-close').addEventListener('click', () => go({ x: null }));
  $('flash').addEventListener('click', () => { $('flash').hidden = true; });
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  // The token is required: Escape does not dismiss the form.
  $('auth').addEventListener('cancel', (ev) => ev.preventDefault());
  window.addEventListener('hashchange', onHash);
  updateSignout();
  readHash();
  onHash();
  setBroker();
  pollLoop();
}

start();
