// The /v1 JSON API: every request of the page goes through api(), which
// turns problem+json answers into errors carrying their `detail`, and on a
// 401 asks for a token (kept in sessionStorage, sent as a Bearer token).
import { $ } from './dom.js';

export const TOKEN_KEY = 'cueq.token';

export class ApiError extends Error {
  constructor(status, problem, message) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

async function readProblem(res) {
  try {
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

let tokenPromise = null;
let tokenWorked = null; // the token of the last request that was answered

// Shows the token form once however many requests were refused; each of
// them waits for it and tries again with the token.
function askToken(why) {
  if (tokenPromise) return tokenPromise;
  tokenPromise = new Promise((resolve) => {
    const dlg = $('auth');
    $('auth-why').textContent = why ||
      'This broker runs with --auth. Enter a token from its auth file.';
    $('auth-token').value = '';
    const submit = (ev) => {
      ev.preventDefault();
      const t = $('auth-token').value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      $('auth-form').removeEventListener('submit', submit);
      dlg.close();
      tokenPromise = null;
      updateSignout();
      resolve();
    };
    $('auth-form').addEventListener('submit', submit);
    if (!dlg.open) dlg.showModal();
    $('auth-token').focus();
  });
  return tokenPromise;
}

export async function api(method, path, body) {
  for (let tries = 0; ; tries++) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, null, 'The broker does not answer (' + e.message + ').');
    }
    // A 401 to a token that has worked is its role or queue prefixes
    // refusing this one request: say so and keep it.  Any other 401 asks
    // for a token (again).
    if (res.status === 401 && tries < 10 && !(token && token === tokenWorked)) {
      const p = await readProblem(res);
      const detail = p && (p.detail || p.title);
      if (token && sessionStorage.getItem(TOKEN_KEY) === token) {
        sessionStorage.removeItem(TOKEN_KEY);
        updateSignout();
      }
      await askToken(token ? 'That token was refused' + (detail ? ': ' + detail : '.') : null);
      continue;
    }
    if (res.ok && token) tokenWorked = token;
    if (!res.ok) {
      const p = await readProblem(res);
      const msg = (p && (p.detail || p.title)) || `${res.status} ${res.statusText}`;
      throw new ApiError(res.status, p, msg);
    }
    const text = await res.text();
    return text ? JSON.parse(text) : {};
  }
}


export function updateSignout() {
  $('signout').hidden = !sessionStorage.getItem(TOKEN_KEY);
}
