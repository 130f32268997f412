// helpers.mjs: what the browser test files share: starting the service under test (real mode:
// hover-sandbox and `hoversync serve` on loopback; mock mode: tests/browser/mock-server.mjs),
// the browser, and page helpers that drive the demo CRM page and the modal.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
/* Third-party cookies blocked (this chromium's default too; the test proves it holds). */
const LAUNCH_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--test-third-party-cookie-phaseout'];
/* Two sites on loopback: the CRM page and the service (real mode). */
const CRM_HOST = '127.0.0.2';
const SERVICE_HOST = '127.0.0.3';

export const JOB_ONE_FAILED = 15084302; // Whitfield Garage Addition: House complete, Detached Garage failed, Shed complete
export const JOB_PROCESSING = 15084303; // Harbor View Remodel: House complete, Garage processing
export const GARAGE_PROCESSING = 17338408;
export const FAILED_GARAGE = 17338405;
const API_KEY = 'test-key-browser-0123456789'; /* serve wants at least 16 characters */

/* The file's service and browser, set by start(): env is {serviceUrl, demoUrl, completeModel(id),
 * stop(), pendingPass, mock?}; screenshots go to out, numbered. */
export const ctx = { env: null, browser: null, out: null, shotNo: 0 };

/* Starts the service (mock: the mock server) and the browser; out: the screenshots' folder
 * under test-output/browser/. */
export async function start({ mock, out }) {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  ctx.out = path.join(ROOT, 'test-output', 'browser', out);
  fs.mkdirSync(ctx.out, { recursive: true });
  ctx.env = mock ? await startMockEnv() : await startRealEnv();
  ctx.browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}

export async function stop() {
  if (ctx.browser) await ctx.browser.close();
  if (ctx.env) await ctx.env.stop();
}

/* ---------- processes ---------- */

function firstExisting(paths) {
  return paths.map((p) => path.resolve(ROOT, p)).find((p) => fs.existsSync(p));
}

export async function waitFor(fn, { timeout = 15000, interval = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      /* one attempt may not outlive the whole wait: a promise that never settles (a frame
       * swapped out under Playwright) becomes a timeout with a name, not a hung test */
      let timer;
      const left = Math.max(end - Date.now(), interval);
      const v = await Promise.race([fn(), new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`one attempt took over ${left} ms`)), left);
      })]).finally(() => clearTimeout(timer));
      if (v) return v;
    } catch (e) {
      if (e && e.fatal) throw e;
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}` + (last ? `: ${last.message}` : ''));
    await new Promise((r) => setTimeout(r, interval));
  }
}

async function readPorts(file, proc, name, logFile) {
  return waitFor(() => {
    if (proc.exitCode !== null) {
      const log = logFile && fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : '';
      throw Object.assign(new Error(`${name} exited with ${proc.exitCode}\n${log}`), { fatal: true });
    }
    if (!fs.existsSync(file)) return null;
    const ports = fs.readFileSync(file, 'utf8').split(/\s+/).filter(Boolean).map(Number);
    return ports.length && ports.every((p) => p > 0) ? ports : null;
  }, { timeout: 20000, interval: 50, what: `${name} port file` }).catch((e) => {
    if (e.fatal) throw e;
    throw new Error(`${name}: ${e.message}` + (logFile && fs.existsSync(logFile) ? '\n' + fs.readFileSync(logFile, 'utf8').slice(-2000) : ''));
  });
}

export async function http(method, url, body, headers = {}) {
  const res = await fetch(url, {
    method, headers: { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = text;
  try { data = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: res.status, data, headers: res.headers };
}

function stopProc(p) {
  return new Promise((resolve) => {
    if (!p || p.exitCode !== null || p.signalCode) return resolve();
    const t = setTimeout(() => { try { p.kill('SIGKILL'); } catch (e) { /* gone */ } }, 8000);
    p.once('exit', () => { clearTimeout(t); resolve(); });
    try { p.kill('SIGTERM'); } catch (e) { clearTimeout(t); resolve(); }
  });
}

async function startMockEnv() {
  const { startMock } = await import('./mock-server.mjs');
  const mock = await startMock({ pendingIntervalMs: 500 });
  console.log(`# mock mode: service ${mock.url}, demo CRM ${mock.demoUrl}`);
  return {
    mock,
    serviceUrl: mock.url,
    demoUrl: mock.demoUrl,
    pendingPass: true,
    completeModel: (id) => http('POST', `${mock.url}/__mock/models/${id}`, { state: 'complete' }),
    stop: () => mock.close(),
  };
}

async function startRealEnv() {
  const sandboxBin = process.env.HOVER_SANDBOX_BIN || firstExisting(['build/ci/sandbox/hover-sandbox', 'build/dev/sandbox/hover-sandbox', 'build/release/sandbox/hover-sandbox', 'build/sandbox/hover-sandbox']);
  const hsBin = process.env.HOVERSYNC_BIN || firstExisting(['build/ci/src/cli/hoversync', 'build/dev/src/cli/hoversync', 'build/release/src/cli/hoversync', 'build/src/cli/hoversync']);
  assert.ok(sandboxBin && fs.existsSync(sandboxBin), 'hover-sandbox binary not found (set HOVER_SANDBOX_BIN)');
  assert.ok(hsBin && fs.existsSync(hsBin), 'hoversync binary not found (set HOVERSYNC_BIN)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hs-browser-'));
  const procs = [];
  const stop = async () => {
    for (const p of procs.reverse()) await stopProc(p);
    if (!process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const sbPorts = path.join(dir, 'sandbox.ports');
    const sbLog = path.join(dir, 'sandbox.log');
    const sbLogFd = fs.openSync(sbLog, 'w');
    const sb = spawn(sandboxBin, ['--port-file', sbPorts, '--jobs', '300', '--seed', '42', '--rate-limit', '0',
      '--redirect-uri', `http://${SERVICE_HOST}:`,
      '--request-log', path.join(dir, 'sandbox-requests.jsonl')], { stdio: ['ignore', sbLogFd, sbLogFd] });
    procs.push(sb);
    const [apiPort] = await readPorts(sbPorts, sb, 'hover-sandbox', sbLog);
    const sandboxUrl = `http://127.0.0.1:${apiPort}`;
    const tok = await http('POST', `${sandboxUrl}/__sandbox/tokens`, {});
    assert.equal(tok.status, 200, 'sandbox tokens');

    const help = spawnSync(hsBin, ['serve', '--help'], { encoding: 'utf8', timeout: 10000 });
    const helpText = (help.stdout || '') + (help.stderr || '');
    assert.ok(help.status === 0 && /--listen/.test(helpText),
      `\`hoversync serve\` is not available in ${hsBin} (run with MOCK=1 until it is):\n${helpText.slice(0, 400)}`);
    const extra = [];
    /* a short pending interval, if serve offers one, so a "sync when ready" model lands quickly */
    const pendingLine = helpText.split('\n').find((l) => /--pending[\w-]*/.test(l));
    let pendingPass = false;
    if (pendingLine) {
      const opt = /(--pending[\w-]*)/.exec(pendingLine)[1];
      const ms = /ms|milli/i.test(pendingLine) || /-ms\b/.test(opt);
      extra.push(opt, ms ? '1000' : '1');
      pendingPass = true;
    }
    /* serve this tree's web/ (the binary may come from another build) */
    if (/--web-dir/.test(helpText)) extra.push('--web-dir', path.join(ROOT, 'web'));
    const hsPorts = path.join(dir, 'serve.ports');
    const hsLog = path.join(dir, 'serve.log');
    const hsLogFd = fs.openSync(hsLog, 'w');
    const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HOVER')));
    Object.assign(childEnv, {
      HOVER_BASE_URL: sandboxUrl,
      HOVER_CLIENT_ID: 'sandbox-client',
      HOVER_CLIENT_SECRET: 'sandbox-secret',
      HOVER_ACCESS_TOKEN: tok.data.access_token,
      HOVER_REFRESH_TOKEN: tok.data.refresh_token,
      HOVERSYNC_DB: path.join(dir, 'hoversync.db'),
      HOVERSYNC_DATA_DIR: path.join(dir, 'data'),
      HOVERSYNC_API_KEY: API_KEY,
      HOVERSYNC_LOG_LEVEL: process.env.HOVERSYNC_LOG_LEVEL || 'info',
    });
    const args = ['serve', '--listen', `${SERVICE_HOST}:0`, '--port-file', hsPorts, '--demo-crm', `${CRM_HOST}:0`, ...extra];
    const hs = spawn(hsBin, args, { env: childEnv, cwd: ROOT, stdio: ['ignore', hsLogFd, hsLogFd] });
    procs.push(hs);
    const ports = await readPorts(hsPorts, hs, 'hoversync serve', hsLog);
    const serviceUrl = `http://${SERVICE_HOST}:${ports[0]}`;
    let demoUrl = ports[1] ? `http://${CRM_HOST}:${ports[1]}/` : null;
    if (!demoUrl) {
      /* not in the port file: look for it in what serve printed */
      demoUrl = await waitFor(() => {
        const m = /demo[^\n]*?(http:\/\/127\.0\.0\.\d+:\d+)/i.exec(fs.readFileSync(hsLog, 'utf8'));
        return m && m[1] + '/';
      }, { timeout: 5000, what: 'the demo CRM URL (port file line 2, or printed by serve)' });
    }
    await waitFor(async () => (await fetch(serviceUrl + '/healthz')).ok, { what: 'hoversync /healthz' });
    console.log(`# real mode: sandbox ${sandboxUrl}; \`${path.relative(ROOT, hsBin)} ${args.join(' ')}\`` +
      ` -> port file [${ports.join(', ')}]: service ${serviceUrl}, demo CRM ${demoUrl}` +
      (pendingPass ? '; short pending pass' : '; serve has no pending-interval option: waiting for its default pending pass'));
    return {
      dir, serviceUrl, demoUrl, sandboxUrl, pendingPass, serveLog: hsLog, apiKey: API_KEY,
      completeModel: (id) => http('POST', `${sandboxUrl}/__sandbox/models/${id}`, { state: 'complete' }),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/* ---------- page helpers ---------- */

/* Each scenario's own limit (they take 2 to 10 s, a minute on a loaded machine): one that hangs
 * fails by name and the others still run. */
export const SCENARIO_MS = 150000;

/* A Playwright call that has no timeout of its own (a key press, an evaluate) ends within ms, or
 * fails the scenario with what it was doing, instead of hanging the whole file. */
export async function bounded(promise, what, ms = 30000) {
  let timer;
  try {
    return await Promise.race([promise, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer from the browser in ${ms} ms`)), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

export async function shot(page, name) {
  ctx.shotNo++;
  const file = path.join(ctx.out, `${String(ctx.shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/* The demo CRM page in a fresh browser context; query: more of its parameters (?connection=). */
export async function newPage(t, viewport = { width: 1280, height: 860 }, query = '') {
  const context = await bounded(ctx.browser.newContext({ viewport, reducedMotion: 'reduce' }), 'a new browser context');
  const page = await bounded(context.newPage(), 'a new page');
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/favicon/.test(m.text())) errors.push(m.text()); });
  t.after(() => context.close());
  const demoUrl = ctx.env.demoUrl + (ctx.env.demoUrl.includes('?') ? '&' : '?') + 'poll_ms=700' + query;
  await page.goto(demoUrl);
  await page.waitForFunction(() => !document.getElementById('import-hover').disabled, null, { timeout: 10000 });
  /* record what the host page gets from the modal */
  await bounded(page.evaluate(() => {
    window.__hsEvents = [];
    window.addEventListener('hoversync:done', (e) => window.__hsEvents.push({ type: 'done', detail: e.detail }));
    window.addEventListener('hoversync:close', (e) => window.__hsEvents.push({ type: 'close', detail: e.detail }));
  }), 'the host page\'s event recorder');
  return { page, context, errors };
}

export async function openModal(page) {
  await page.click('#import-hover');
  const iframe = page.locator('iframe[title="Import from Hover"]');
  await iframe.waitFor();
  /* the modal's frame, looked up among the page's frames (a synchronous list): an element
   * handle's contentFrame() can wait for ever when the out-of-process frame is replaced */
  const frame = await waitFor(() => page.frames().find((f) => !f.isDetached() && f.parentFrame() === page.mainFrame() &&
    /\/modal\?/.test(f.url())), { what: 'modal frame' });
  await frame.waitForSelector('#hs-q');
  /* the modal said it is ready (the host hid its loading cover) and the first list arrived */
  await frame.waitForFunction(() => document.getElementById('hs-results-wrap').getAttribute('aria-busy') === 'false' &&
    document.getElementById('hs-results-wrap').dataset.query !== undefined, null, { timeout: 15000 });
  return frame;
}

export const activeId = (frame) => bounded(frame.evaluate(() => document.activeElement && document.activeElement.id), 'the focused element');

export const waitQuery = (frame, q) => frame.waitForFunction((q) => {
  const wrap = document.getElementById('hs-results-wrap');
  return wrap.getAttribute('aria-busy') === 'false' && wrap.dataset.query === q;
}, q, { timeout: 15000 });

export async function searchFor(page, frame, text, { fill = false } = {}) {
  await frame.focus('#hs-q');
  await frame.fill('#hs-q', '');
  if (fill) await frame.fill('#hs-q', text); /* one input event: one request */
  else await page.keyboard.type(text, { delay: 40 });
  await waitQuery(frame, text);
}

export async function openJobFromResults(frame, jobId) {
  await frame.click(`[role="option"][data-job-id="${jobId}"]`);
  await frame.waitForSelector('.hs-cards:not([aria-hidden]) .hs-card', { timeout: 15000 });
}

export async function waitSummary(frame) {
  await frame.waitForSelector('#hs-summary:not([hidden])', { timeout: 60000 });
}

export async function finishModal(page, frame) {
  await frame.click('#hs-done');
  await page.waitForSelector('iframe[title="Import from Hover"]', { state: 'detached' });
  const events = await page.evaluate(() => window.__hsEvents);
  return events.filter((e) => e.type === 'done').pop();
}

/* Clicks a link to a stored file; the answer to the tab it opens (the file, with a ticket). */
export async function openedFile(page, link) {
  const answer = page.context().waitForEvent('response', {
    predicate: (r) => /\/files\/[0-9a-f]{64}\?ticket=[0-9a-f]{64}$/.test(r.url()), timeout: 15000,
  });
  await link.click();
  return answer;
}
