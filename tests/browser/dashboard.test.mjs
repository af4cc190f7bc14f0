// test_dashboard: the dashboard used as a person would, in Debian's
// chromium (headless, driven over the DevTools protocol by puppeteer-core),
// against a real cueqd whose jobs are made with the real CLI.
//
//   node dashboard.test.mjs CUEQD CUEQ      (or $CUEQD and $CUEQ)
//
// The broker runs with --auth, so the page first asks for a token: a wrong
// one is refused in the form, the admin's is taken.  Then it makes a dead
// letter (push, claim, nack --terminal), finds it in the page, clicks
// retry, and asks the broker through the CLI that the execution is ready
// again; it checks that the queue table shows the broker's counts, opens the
// execution's history, and keeps a screenshot in artifacts/ of the working
// directory (ctest's: build/tests).  The broker and the browser are ended
// and the temp dir removed on every path: an own deadline ends the test
// before ctest's timeout would kill it and leave them behind.
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtemp, mkdir, rm, readFile, writeFile } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

let puppeteer;
try {
  puppeteer = (await import('puppeteer-core')).default;
} catch (e) {
  console.error(`test_dashboard: FAIL: puppeteer-core is not installed (${e.code || e.message}): ` +
    'run npm ci --prefix tests/browser (tests/run.sh does)');
  process.exit(1);
}

const CUEQD = process.argv[2] || process.env.CUEQD;
const CUEQ = process.argv[3] || process.env.CUEQ;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = resolve(process.env.CUEQ_ARTIFACTS || 'artifacts');
const DEADLINE_MS = Number(process.env.CUEQ_TEST_DEADLINE_MS || 100000);
const QUEUE = 'emails';
const OTHER = 'reports';
const TOKEN = 'dashboard-test-admin-' + process.pid.toString(16).padStart(12, '0');

let broker = null;
let brokerExit = null;
let browser = null;
let dir = null;
let page = null;
let step = 'starting';

function log(msg) {
  console.log(`test_dashboard: ${msg}`);
}

class Failure extends Error {}

function fail(msg) {
  throw new Failure(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// The CLI, its exit code and output; never throws for a non-zero exit.
function cli(url, args) {
  return new Promise((res) => {
    const env = { ...process.env, CUEQ_TOKEN: TOKEN };
    execFile(CUEQ, ['--url', url, ...args], { timeout: 15000, env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      res({ code, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

async function cliOk(url, args) {
  const r = await cli(url, args);
  if (r.code !== 0) fail(`cueq ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function cliJson(url, args) {
  const out = await cliOk(url, ['--json', ...args]);
  try {
    return JSON.parse(out);
  } catch {
    fail(`cueq --json ${args.join(' ')} printed no JSON object: ${out}`);
  }
}

async function startBroker(port, httpPort) {
  const logPath = join(dir, 'cueqd.log');
  const auth = join(dir, 'auth');
  await writeFile(auth, `admin dashboard-test ${TOKEN}\n`, { mode: 0o600 });
  const fd = openSync(logPath, 'w');
  broker = spawn(CUEQD, ['--data', join(dir, 'data'), '--listen', `tcp://127.0.0.1:${port}`,
    '--http', `127.0.0.1:${httpPort}`, '--auth', auth], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  brokerExit = new Promise((r) => broker.on('exit', (code, sig) => r({ code, sig })));
  broker.on('exit', (code, sig) => { broker.exited = { code, sig }; });
  const url = `tcp://127.0.0.1:${port}`;
  const until = Date.now() + 20000;
  for (;;) {
    if (broker.exited) fail(`cueqd exited (${JSON.stringify(broker.exited)}) before it answered a ping`);
    const r = await cli(url, ['ping']);
    if (r.code === 0) break;
    if (Date.now() > until) fail(`cueqd did not answer a ping in 20 s: ${r.stderr}`);
    await sleep(100);
  }
  // The HTTP face starts with the broker; wait until it answers too.
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/ping`);
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (broker.exited) fail('cueqd exited before its HTTP face answered');
    if (Date.now() > until) fail(`cueqd's HTTP face at 127.0.0.1:${httpPort} did not answer in 20 s`);
    await sleep(100);
  }
  return url;
}

// Waits until fn() (run in the page) returns a truthy value, or fails with
// what the page shows then.
async function waitInPage(what, fn, arg, timeout = 15000) {
  try {
    return await (await page.waitForFunction(fn, { timeout, polling: 100 }, arg)).jsonValue();
  } catch (e) {
    const flash = await page.$eval('#flash', (f) => (f.hidden ? '' : f.textContent)).catch(() => '');
    fail(`${what}: not seen in ${timeout} ms${flash ? ` (the page says: ${flash})` : ''} [${e.message.split('\n')[0]}]`);
  }
}

async function queueCounts(name) {
  return page.$eval(`#queues-body tr[data-queue="${name}"]`, (tr) => {
    const out = {};
    for (const td of tr.querySelectorAll('td[data-field]')) out[td.dataset.field] = td.textContent.trim();
    return out;
  });
}

async function run() {
  if (!CUEQD || !CUEQ) fail('usage: node dashboard.test.mjs CUEQD CUEQ (or set $CUEQD and $CUEQ)');
  dir = await mkdtemp(join(tmpdir(), 'cueq-dashboard-'));
  await mkdir(ARTIFACTS, { recursive: true });

  step = 'starting cueqd';
  const port = await freePort();
  let httpPort = await freePort();
  while (httpPort === port) httpPort = await freePort();
  const url = await startBroker(port, httpPort);
  log(`cueqd on ${url}, HTTP on 127.0.0.1:${httpPort}, data in ${dir}`);

  // The jobs, through the real CLI.  Claims take the oldest ready job, so
  // each is pushed just before the claim that should take it.
  step = 'making jobs with the CLI';
  const deadId = await cliOk(url, ['push', QUEUE, '{"to":"ada@example.com","template":"<welcome>"}']);
  const c1 = await cliJson(url, ['claim', QUEUE]);
  if (c1.execution_id !== deadId) fail(`claimed ${c1.execution_id}, not the pushed ${deadId}`);
  await cliOk(url, ['step', 'set', deadId, 'render', 'tpl-v7', '--token', c1.lease_token]);
  await cliOk(url, ['nack', deadId, '--token', c1.lease_token, '--error', 'smtp: 550 mailbox unavailable', '--terminal']);
  const doneId = await cliOk(url, ['push', QUEUE, 'receipt']);
  const c2 = await cliJson(url, ['claim', QUEUE]);
  if (c2.execution_id !== doneId) fail(`claimed ${c2.execution_id}, not the pushed ${doneId}`);
  await cliOk(url, ['ack', doneId, '--token', c2.lease_token, '--result', 'sent']);
  const leasedId = await cliOk(url, ['push', QUEUE, 'digest']);
  const c3 = await cliJson(url, ['claim', QUEUE, '--lease', '10m']);
  if (c3.execution_id !== leasedId) fail(`claimed ${c3.execution_id}, not the pushed ${leasedId}`);
  for (const p of ['reminder 1', 'reminder 2', 'reminder 3']) await cliOk(url, ['push', QUEUE, p]);
  await cliOk(url, ['push', QUEUE, 'tomorrow', '--delay', '1h']);
  await cliOk(url, ['push', QUEUE, 'newsletter', '--every', '15m']);
  await cliOk(url, ['push', OTHER, 'monthly']);
  await cliOk(url, ['push', OTHER, 'weekly']);
  const before = await cliJson(url, ['get', deadId]);
  if (before.state !== 'dead') fail(`execution ${deadId} is ${before.state} after nack --terminal, not dead`);
  log(`dead letter ${deadId}`);

  step = 'launching chromium';
  const args = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox'); // chromium refuses root otherwise
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true, // the new headless mode (--headless=new)
    args,
    userDataDir: join(dir, 'chromium'),
    timeout: 30000,
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 1000 });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Chromium logs each refused request (the 401s before the token) as an
  // error of its own; the page's own errors are what count.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push('console: ' + m.text());
  });
  page.on('dialog', (d) => d.dismiss()); // nothing this test clicks should ask

  step = 'opening the dashboard';
  const home = `http://127.0.0.1:${httpPort}/`;
  const res = await page.goto(home, { waitUntil: 'load', timeout: 15000 });
  if (!res || res.status() !== 200) fail(`GET ${home} answered ${res ? res.status() : 'nothing'}`);
  if (!(res.headers()['content-type'] || '').startsWith('text/html')) {
    fail(`GET ${home} is ${res.headers()['content-type']}, not text/html`);
  }

  step = 'giving the page a token';
  await waitInPage('the token form', () => document.getElementById('auth').open);
  await page.type('#auth-token', 'not-a-token-of-this-broker');
  await page.click('#auth-submit');
  await waitInPage('the form saying the wrong token was refused', () => {
    const d = document.getElementById('auth');
    return d.open && document.getElementById('auth-why').textContent.includes('refused');
  });
  await page.type('#auth-token', TOKEN);
  await page.click('#auth-submit');
  await waitInPage('the token form closed', () => !document.getElementById('auth').open);
  const kept = await page.evaluate(() => sessionStorage.getItem('cueq.token'));
  if (kept !== TOKEN) fail('the page did not keep the token in sessionStorage');

  step = 'reading the queue table';
  await waitInPage(`queue ${QUEUE} in the table`, (q) => document.querySelector(`#queues-body tr[data-queue="${q}"]`), QUEUE);
  const want = { scheduled: '1', ready: '3', leased: '1', succeeded: '1', dead: '1', cancelled: '0', cues: '1' };
  const got = await queueCounts(QUEUE);
  for (const [k, v] of Object.entries(want)) {
    if (got[k] !== v) fail(`queue ${QUEUE} shows ${k} ${got[k]}, the broker has ${v} (row: ${JSON.stringify(got)})`);
  }
  const other = await queueCounts(OTHER);
  if (other.ready !== '2') fail(`queue ${OTHER} shows ready ${other.ready}, the broker has 2`);
  log(`queue table: ${QUEUE} ${JSON.stringify(got)}`);

  step = 'opening the dead letters';
  await page.click(`#queues-body a[data-action="open-queue"][data-queue="${QUEUE}"]`);
  await waitInPage('the queue view', (q) => {
    const t = document.getElementById('queue-title');
    return !document.getElementById('queue-card').hidden && t.textContent === q;
  }, QUEUE);
  await page.click('.tabs button[data-tab="dead"]');
  const retrySel = `#dead-body button[data-action="retry"][data-id="${deadId}"]`;
  await waitInPage(`the retry button of ${deadId}`, (s) => {
    const b = document.querySelector(s);
    return b && b.offsetParent !== null;
  }, retrySel);
  const why = await page.$eval(`#dead-body tr[data-execution-id="${deadId}"]`, (tr) => tr.textContent);
  if (!why.includes('smtp: 550 mailbox unavailable')) fail(`the dead letter's row does not say why it died: ${why}`);

  step = 'clicking retry';
  await page.click(retrySel);
  await waitInPage('the page saying the retry was done', (id) => {
    const f = document.getElementById('flash');
    return !f.hidden && f.dataset.kind === 'ok' && f.textContent.includes(id) &&
      !document.querySelector(`#dead-body tr[data-execution-id="${id}"]`);
  }, deadId);

  step = 'asking the broker';
  const after = await cliJson(url, ['get', deadId]);
  if (after.state !== 'ready') fail(`execution ${deadId} is ${after.state} after the retry, not ready`);
  if (!after.history.some((h) => h.event === 'retried')) fail(`execution ${deadId} has no retried event`);
  log(`cueq get ${deadId}: state ${after.state}`);

  step = 'reading the counts after the retry';
  await waitInPage('the queue table counting the retried execution', (q) => {
    const tr = document.querySelector(`#queues-body tr[data-queue="${q}"]`);
    const f = (n) => tr.querySelector(`td[data-field="${n}"]`).textContent.trim();
    return tr && f('ready') === '4' && f('dead') === '0';
  }, QUEUE);

  step = 'opening the execution';
  await page.click('.tabs button[data-tab="executions"]');
  const link = `#executions-body a[data-action="open-execution"][data-id="${deadId}"]`;
  await waitInPage(`${deadId} in the executions list`, (s) => document.querySelector(s), link);
  await page.click(link);
  await waitInPage(`the history of ${deadId}`, () => {
    const card = document.getElementById('detail-card');
    const events = [...document.querySelectorAll('#detail-history tbody tr')].map((tr) => tr.dataset.event);
    return !card.hidden && events.includes('nacked') && events.includes('retried');
  });
  const payload = await page.$eval('#detail-payload', (p) => p.textContent);
  if (payload !== '{"to":"ada@example.com","template":"<welcome>"}') fail(`the payload shows as ${payload}`);
  const stepRow = await page.$eval('#detail-steps tbody tr[data-step="render"]', (tr) => tr.textContent).catch(() => null);
  if (!stepRow || !stepRow.includes('tpl-v7')) fail(`the step ledger does not show step render = tpl-v7: ${stepRow}`);

  // Claims per second come from the growth of deliveries between polls.
  step = 'the claims rate';
  for (let i = 0; i < 2; i++) {
    const c = await cliJson(url, ['claim', OTHER]);
    await cliOk(url, ['ack', c.execution_id, '--token', c.lease_token]);
  }
  await waitInPage(`a claims rate on ${OTHER}`, (q) => {
    const v = document.querySelector(`#queues-body tr[data-queue="${q}"] [data-field="claims-rate"]`);
    return v && parseFloat(v.textContent) > 0;
  }, OTHER, 10000);

  // A few more polls, so the sparklines have a line to draw.
  step = 'the sparklines';
  await waitInPage('sparklines with three polls', (q) => {
    const s = document.querySelector(`#queues-body tr[data-queue="${q}"] svg[data-spark="ready-leased"]`);
    return s && Number(s.getAttribute('data-points')) >= 3 && s.querySelector('polyline');
  }, QUEUE, 20000);
  await page.mouse.move(0, 0);

  if (pageErrors.length) fail(`the page logged errors: ${pageErrors.join(' | ')}`);

  step = 'the screenshot';
  const shot = join(ARTIFACTS, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  log(`screenshot: ${shot}`);
}

async function cleanup() {
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
    const proc = browser.process();
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    browser = null;
  }
  if (broker && !broker.exited) {
    broker.kill('SIGTERM');
    const done = await Promise.race([brokerExit, sleep(5000).then(() => null)]);
    if (!done) {
      broker.kill('SIGKILL');
      await brokerExit;
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => {});
}

async function failureReport(e) {
  console.error(`test_dashboard: FAIL while ${step}: ${e instanceof Failure ? e.message : e.stack || e}`);
  if (page) {
    const shot = join(ARTIFACTS, 'dashboard-failure.png');
    await Promise.race([page.screenshot({ path: shot, fullPage: true }).then(
      () => console.error(`test_dashboard: the page then: ${shot}`), () => {}), sleep(5000)]);
  }
  if (dir) {
    const text = await readFile(join(dir, 'cueqd.log'), 'utf8').catch(() => '');
    if (text) console.error('test_dashboard: cueqd log (last lines):\n' + text.split('\n').slice(-20).join('\n'));
  }
}

let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  await cleanup();
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`test_dashboard: FAIL: ${sig} while ${step}`);
    finish(1);
  });
}
const deadline = setTimeout(async () => {
  await failureReport(new Failure(`the test's own deadline of ${DEADLINE_MS} ms passed`));
  finish(1);
}, DEADLINE_MS);

try {
  await run();
  clearTimeout(deadline);
  log('PASS');
  await finish(0);
} catch (e) {
  clearTimeout(deadline);
  await failureReport(e);
  await finish(1);
}
