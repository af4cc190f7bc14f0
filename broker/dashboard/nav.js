// Where the page is: the URL's hash holds the queue, tab, state filter,
// page and execution looked at, so reloads, links and the back button work.
import { STATES } from './dom.js';

// The hash is a query string: q, tab, state, after, x (an execution or cue).
export const view = { q: null, tab: 'executions', state: '', after: '', x: null };
// gen is bumped on every navigation; late answers of older views are dropped.
export const nav = { gen: 0 };

export function readHash() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  view.q = p.get('q') || null;
  view.tab = ['executions', 'dead', 'cues'].includes(p.get('tab')) ? p.get('tab') : 'executions';
  view.state = STATES.includes(p.get('state')) ? p.get('state') : '';
  view.after = p.get('after') || '';
  view.x = p.get('x') || null;
}

export function link(change) {
  const next = { ...view, ...change };
  const p = new URLSearchParams();
  if (next.q) p.set('q', next.q);
  if (next.q && next.tab !== 'executions') p.set('tab', next.tab);
  if (next.q && next.state && next.tab === 'executions') p.set('state', next.state);
  if (next.q && next.after) p.set('after', next.after);
  if (next.x) p.set('x', next.x);
  return '#' + p.toString();
}

export function go(change, replace) {
  const h = link(change);
  if (replace) {
    history.replaceState(null, '', h);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else if (h !== location.hash && !(h === '#' && !location.hash)) {
    location.hash = h;
  } else {
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  }
}

