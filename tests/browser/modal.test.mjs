// modal.test.mjs: browser tests of the Hover import modal (web/modal.*, web/hoversync-modal.js)
// and the demo CRM page (web/demo/crm.html), driven by playwright-core on Debian's chromium.
//
// Real mode (default): starts hover-sandbox (HOVER_SANDBOX_BIN) and `hoversync serve`
// (HOVERSYNC_BIN) on free loopback ports, with a fresh database, and drives the demo CRM page
// the service serves. The CRM page and the service are two sites (127.0.0.2 frames 127.0.0.3),
// and the browser blocks third-party cookies, as Safari does by default: the modal works
// without cookies. MOCK=1: the same scenarios against tests/browser/mock-server.mjs (fast, no
// binaries; those that need the real service are skipped). The error states that only the mock
// can inject are in mock.test.mjs, which the suite runs too.
// Screenshots of every step go to test-output/browser/ (test-output/browser/mock/ for MOCK=1).
//
// Run: tests/browser/run.sh, or `node --test` in tests/browser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ctx, SCENARIO_MS, start, stop, http, waitFor, bounded, shot, newPage, openModal, activeId, searchFor,
  openJobFromResults, waitSummary, finishModal, openedFile,
  JOB_ONE_FAILED, JOB_PROCESSING, GARAGE_PROCESSING, FAILED_GARAGE,
} from './helpers.mjs';

const MOCK = process.env.MOCK === '1';

before(() => start({ mock: MOCK, out: MOCK ? 'mock' : '' }));
after(stop);

/* ---------- scenarios ---------- */

test('search by address, pick the job with a failed model, sync the two complete ones, see the records on the CRM page', { timeout: SCENARIO_MS }, async (t) => {
  const { page, errors } = await newPage(t);
  await shot(page, 'crm-record');

  const frame = await openModal(page);
  assert.equal(await activeId(frame), 'hs-q', 'the search box has the focus when the modal opens');
  const dialog = await frame.$('[role="dialog"]');
  assert.equal(await dialog.getAttribute('aria-modal'), 'true');
  assert.equal(await frame.$eval('#hs-title', (n) => n.textContent), 'Import from Hover');
  await shot(page, 'modal-open');

  await searchFor(page, frame, 'Orchard');
  const option = frame.locator(`[role="option"][data-job-id="${JOB_ONE_FAILED}"]`);
  const optText = await option.innerText();
  assert.match(optText, /Whitfield Garage Addition/);
  assert.match(optText, /118 Orchard Lane/);
  assert.match(optText, /3 models, 2 complete/);
  assert.match(optText, /Completed/);
  await shot(page, 'search-orchard');

  await openJobFromResults(frame, JOB_ONE_FAILED);
  const cards = frame.locator('.hs-cards .hs-card');
  assert.equal(await cards.count(), 3);
  const failed = frame.locator(`.hs-card[data-model-id="${FAILED_GARAGE}"]`);
  assert.equal(await failed.getAttribute('aria-disabled'), 'true');
  assert.match(await failed.innerText(), /Hover could not build this model/);
  assert.equal(await failed.locator('input').count(), 0, 'a failed model cannot be checked');
  assert.equal(await frame.$eval('#hs-sync', (b) => b.disabled), true, 'Sync is disabled until a model is chosen');
  assert.match(await frame.locator('#hs-job').innerText(), /Marcus Whitfield/);
  await shot(page, 'job-models');

  await frame.click('#hs-select-all');
  const checked = await frame.$$eval('.hs-card input[type="checkbox"]:checked', (l) => l.map((i) => Number(i.dataset.modelId)));
  assert.deepEqual(checked.sort(), [17338404, 17338406]);
  assert.equal(await frame.$eval('#hs-sync', (b) => b.disabled), false);
  assert.equal(await frame.$eval('#hs-sync', (b) => b.textContent), 'Sync 2 models');
  await shot(page, 'job-selected');

  await frame.click('#hs-sync');
  await frame.waitForSelector('#view-sync:not([hidden]) .hs-prog-row');
  assert.equal(await frame.locator('.hs-prog-row').count(), 2);
  await shot(page, 'sync-progress');
  await waitSummary(frame);
  /* every bar reached its end */
  const bars = await frame.$$eval('.hs-bar', (l) => l.map((b) => [b.getAttribute('aria-valuenow'), b.getAttribute('aria-valuemax')]));
  for (const [now, max] of bars) assert.equal(now, max, 'progress bar complete');
  const synced = await frame.$$eval('.hs-sum-group.is-synced li', (l) => l.map((li) => li.querySelector('.hs-sum-name').textContent));
  assert.deepEqual(synced.sort(), ['House', 'Shed']);
  assert.ok(await frame.locator('.hs-sum-group.is-synced a.hs-file').count() >= 1, 'links to the stored files');
  assert.equal(await frame.$eval('#hs-sync-title', (n) => n.textContent), 'Sync complete');
  await shot(page, 'sync-summary');

  const done = await finishModal(page, frame);
  assert.ok(done, 'hoversync:done was dispatched');
  assert.equal(done.detail.job.id, JOB_ONE_FAILED);
  assert.deepEqual(done.detail.synced_models.map((m) => m.name).sort(), ['House', 'Shed']);
  assert.deepEqual(done.detail.pending_models, []);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'import-hover', 'focus back on the Import button');

  /* what landed: the demo page's Hover panel, from the records feed */
  await page.waitForFunction(() => document.querySelectorAll('#hover-body .model[data-status="synced"] .figures').length === 2, null, { timeout: 15000 });
  const panel = await page.locator('#hover-panel').innerText();
  assert.match(panel, /Whitfield Garage Addition/);
  assert.match(panel, /House/);
  assert.match(panel, /Shed/);
  assert.match(panel, /Roof/);
  const pdf = page.locator('#hover-body .model a[data-kind="pdf"]').first();
  assert.match(await pdf.getAttribute('href'), /\/files\/[0-9a-f]{64}$/, 'a PDF link');
  if (!MOCK) {
    /* a new tab sends no header: the link opens the file with a one-time ticket */
    const res = await openedFile(page, pdf);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /pdf/);
  }
  await page.locator('#hover-panel').scrollIntoViewIfNeeded();
  await shot(page, 'crm-records');
  assert.deepEqual(errors, []);
});

test('a processing model chosen "sync when ready" lands once Hover completes it', { timeout: SCENARIO_MS }, async (t) => {
  const { page, errors } = await newPage(t);
  let frame = await openModal(page);
  await searchFor(page, frame, 'Harbor View');
  /* keyboard: first result, Enter */
  await page.keyboard.press('ArrowDown');
  assert.equal(await frame.$eval('#hs-q', (i) => i.getAttribute('aria-activedescendant')), `hs-opt-${JOB_PROCESSING}`);
  await page.keyboard.press('Enter');
  await frame.waitForSelector('.hs-cards:not([aria-hidden]) .hs-card');
  const garage = frame.locator(`.hs-card[data-model-id="${GARAGE_PROCESSING}"]`);
  assert.match(await garage.innerText(), /Processing/);
  assert.match(await garage.innerText(), /Sync when ready/);
  assert.equal(await garage.locator('input[role="switch"]').count(), 1);
  await garage.locator('.hs-switch').click();
  await frame.locator('.hs-card[data-model-id="17338407"] .hs-check').click();
  assert.match(await frame.locator('#hs-selection').innerText(), /1 model selected · 1 to sync when ready/);
  await shot(page, 'when-ready-selected');

  await frame.click('#hs-sync');
  await waitSummary(frame);
  assert.match(await frame.locator('.hs-sum-group.is-pending').innerText(), /Garage/);
  assert.match(await frame.locator('.hs-sum-group.is-synced').innerText(), /House/);
  await shot(page, 'when-ready-summary');
  const done = await finishModal(page, frame);
  assert.deepEqual(done.detail.pending_models.map((m) => m.id), [GARAGE_PROCESSING]);

  await page.waitForSelector(`#hover-body .model[data-model-id="${GARAGE_PROCESSING}"][data-status="pending"]`);
  await shot(page, 'crm-waiting-for-hover');

  /* Hover finishes the garage */
  const r = await ctx.env.completeModel(GARAGE_PROCESSING);
  assert.equal(r.status, 200, 'model completed at the sandbox');

  const landed = `#hover-body .model[data-model-id="${GARAGE_PROCESSING}"][data-status="synced"]`;
  /* the service's pending pass syncs it by itself: quickly with a short interval option, else
   * within its default interval (30 s); PENDING_WAIT_MS=0 skips straight to a re-sync */
  const wait = ctx.env.pendingPass ? 20000 : Number(process.env.PENDING_WAIT_MS ?? 45000);
  let viaPendingPass = false;
  if (wait > 0) {
    viaPendingPass = await page.waitForSelector(landed, { timeout: wait }).then(() => true, () => false);
  }
  if (!viaPendingPass) {
    /* no pending pass (or it did not run in time): sync it again from the modal */
    t.diagnostic('pending pass did not complete the model: re-syncing it from the modal');
    frame = await openModal(page);
    await searchFor(page, frame, 'Harbor View');
    await openJobFromResults(frame, JOB_PROCESSING);
    await waitFor(async () => {
      if (await frame.locator(`.hs-card[data-model-id="${GARAGE_PROCESSING}"] input[type="checkbox"]:not([role="switch"])`).count()) return true;
      await frame.click('#hs-back');
      await openJobFromResults(frame, JOB_PROCESSING); /* the service caches a job a few seconds */
      return false;
    }, { timeout: 20000, interval: 1500, what: 'the garage to show as complete' });
    await frame.locator(`.hs-card[data-model-id="${GARAGE_PROCESSING}"] .hs-check`).click();
    await frame.click('#hs-sync');
    await waitSummary(frame);
    await finishModal(page, frame);
    await page.waitForSelector(landed, { timeout: 20000 });
  }
  const row = await page.locator(`#hover-body .model[data-model-id="${GARAGE_PROCESSING}"]`).innerText();
  assert.match(row, /Synced/);
  await page.locator('#hover-panel').scrollIntoViewIfNeeded();
  await shot(page, 'crm-pending-landed');
  t.diagnostic(viaPendingPass ? 'the pending pass synced the garage' : 'a re-sync synced the garage');
  assert.deepEqual(errors, []);
});

test('keyboard: arrows move through the listbox, Enter opens the active job', { timeout: SCENARIO_MS }, async (t) => {
  const { page, errors } = await newPage(t);
  const frame = await openModal(page);
  await searchFor(page, frame, 'Drive');
  const ids = await frame.$$eval('[role="listbox"] [role="option"]', (l) => l.map((o) => o.id));
  assert.ok(ids.length >= 2, `at least two results for "Drive" (${ids.length})`);
  assert.equal(await frame.$eval('[role="listbox"]', (l) => l.id), await frame.$eval('#hs-q', (i) => i.getAttribute('aria-controls')));
  assert.equal(await frame.$eval('#hs-q', (i) => i.getAttribute('aria-expanded')), 'true');
  const active = () => frame.$eval('#hs-q', (i) => i.getAttribute('aria-activedescendant'));
  const selected = () => frame.$$eval('[role="option"][aria-selected="true"]', (l) => l.map((o) => o.id));
  await page.keyboard.press('ArrowDown');
  assert.equal(await active(), ids[0]);
  await page.keyboard.press('ArrowDown');
  assert.equal(await active(), ids[1]);
  assert.deepEqual(await selected(), [ids[1]]);
  await shot(page, 'keyboard-second-result');
  await page.keyboard.press('ArrowUp');
  assert.equal(await active(), ids[0]);
  await page.keyboard.press('ArrowUp');
  assert.equal(await active(), ids[ids.length - 1], 'ArrowUp on the first wraps to the last');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  assert.equal(await active(), ids[1]);
  assert.equal(await activeId(frame), 'hs-q', 'the focus stays in the box (aria-activedescendant)');
  const name = await frame.$eval('#' + ids[1] + ' .hs-opt-name', (n) => n.textContent);
  await page.keyboard.press('Enter');
  await frame.waitForSelector('#view-job:not([hidden]) #hs-job-name');
  await frame.waitForSelector('#hs-job[aria-busy="false"]');
  assert.equal(await frame.$eval('#hs-job-name', (n) => n.textContent), name);
  await shot(page, 'keyboard-opened-job');
  /* back to the list keeps the query */
  await frame.click('#hs-back');
  assert.equal(await frame.$eval('#hs-q', (i) => i.value), 'Drive');
  assert.deepEqual(errors, []);
});

test('Escape closes the modal and gives the focus back to the Import button; Tab stays inside', { timeout: SCENARIO_MS }, async (t) => {
  const { page, errors } = await newPage(t);
  const frame = await openModal(page);
  /* Tab around: the focus never leaves the dialog */
  for (let i = 0; i < 12; i++) {
    await bounded(page.keyboard.press('Tab'), `Tab ${i + 1}`);
    const inside = await bounded(frame.evaluate(() => document.getElementById('hs-dialog').contains(document.activeElement) && document.hasFocus()), 'where the focus is');
    assert.ok(inside, `focus inside the dialog after ${i + 1} Tab(s)`);
  }
  for (let i = 0; i < 5; i++) {
    await bounded(page.keyboard.press('Shift+Tab'), `Shift+Tab ${i + 1}`);
    assert.ok(await bounded(frame.evaluate(() => document.getElementById('hs-dialog').contains(document.activeElement)), 'where the focus is'));
  }
  await frame.focus('#hs-q');
  await bounded(page.keyboard.type('Orch'), 'typing in the search box');
  await shot(page, 'before-escape');
  /* Escape closes the frame that has the focus: the key goes down in the modal and comes up on the
   * host page once the frame is gone, as a person's key does, rather than a key-up sent to a frame
   * being destroyed. This scenario has hung a few times on a loaded machine, at a step not known;
   * each call here without a timeout of its own is bounded, so that a hang names its step. */
  await bounded(page.keyboard.down('Escape'), 'Escape pressed in the modal');
  await page.waitForSelector('iframe[title="Import from Hover"]', { state: 'detached' });
  await bounded(page.keyboard.up('Escape'), 'Escape released on the host page');
  assert.equal(await bounded(page.evaluate(() => document.activeElement.id), 'the host page'), 'import-hover');
  const events = await bounded(page.evaluate(() => window.__hsEvents), 'the host page');
  assert.deepEqual(events.map((e) => e.type), ['close']);
  assert.equal(await bounded(page.evaluate(() => document.querySelector('[data-hoversync]')), 'the host page'), null, 'nothing left behind');
  assert.equal(await bounded(page.evaluate(() => document.documentElement.style.overflow), 'the host page'), '', 'page scroll restored');
  await shot(page, 'after-escape-focus-restored');
  /* opens again */
  const again = await openModal(page);
  assert.equal(await activeId(again), 'hs-q');
  assert.deepEqual(errors, []);
});

test('Sign out ends the modal\'s session on the service and closes the modal', { timeout: SCENARIO_MS, skip: MOCK ? 'the mock keeps no sessions' : false }, async (t) => {
  const { page, context, errors } = await newPage(t);
  const auth = []; /* the session the modal sends */
  context.on('request', (r) => {
    const h = r.headers().authorization;
    if (h && r.url().startsWith(ctx.env.serviceUrl + '/api/')) auth.push(h);
  });
  const frame = await openModal(page);
  await waitFor(async () => auth.length > 0, { what: 'a call of the modal with its session' });
  const bearer = auth[0];
  assert.equal((await http('GET', `${ctx.env.serviceUrl}/api/session`, undefined, { Authorization: bearer })).status, 200);
  await shot(page, 'before-sign-out');
  await frame.click('#hs-signout');
  await page.waitForSelector('iframe[title="Import from Hover"]', { state: 'detached' });
  assert.deepEqual((await page.evaluate(() => window.__hsEvents)).map((e) => e.type), ['close']);
  assert.equal((await http('GET', `${ctx.env.serviceUrl}/api/session`, undefined, { Authorization: bearer })).status, 401, 'the session is ended');
  assert.deepEqual(errors, []);
});

test('messages from another origin are ignored by the host page', { timeout: SCENARIO_MS }, async (t) => {
  const { page } = await newPage(t);
  await openModal(page);
  /* a forged "done" posted by the host page itself (not the service origin, not the iframe) */
  await page.evaluate(() => window.postMessage({ source: 'hoversync', type: 'done', result: { job: { id: 1 } } }, '*'));
  await page.waitForTimeout(300);
  assert.equal(await page.locator('iframe[title="Import from Hover"]').count(), 1, 'still open');
  assert.deepEqual(await page.evaluate(() => window.__hsEvents), []);
});

test('360 px wide: the record page and the modal fit, the model cards stack', { timeout: SCENARIO_MS }, async (t) => {
  const { page, errors } = await newPage(t, { width: 360, height: 740 });
  await shot(page, 'narrow-crm');
  const frame = await openModal(page);
  await shot(page, 'narrow-modal-search');
  await searchFor(page, frame, 'Orchard');
  await openJobFromResults(frame, JOB_ONE_FAILED);
  const boxes = [];
  for (const c of await frame.$$('.hs-cards .hs-card')) boxes.push(await c.boundingBox());
  assert.equal(boxes.length, 3);
  for (let i = 1; i < boxes.length; i++) {
    assert.ok(Math.abs(boxes[i].x - boxes[0].x) < 1, 'cards share one column');
    assert.ok(boxes[i].y >= boxes[i - 1].y + boxes[i - 1].height - 1, 'each card below the previous one');
  }
  const dialogBox = await page.locator('iframe[title="Import from Hover"]').boundingBox();
  assert.ok(dialogBox.width <= 360 && dialogBox.x >= 0, 'the modal fits the screen');
  assert.ok(await frame.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth), 'no horizontal scroll in the modal');
  await shot(page, 'narrow-job-cards-stacked');
  await frame.$eval('.hs-body', (b) => { b.scrollTop = b.scrollHeight; });
  await shot(page, 'narrow-job-cards-bottom');
  assert.deepEqual(errors, []);
});

/* ---------- a CRM on another site ---------- */

test('a CRM on another site with third-party cookies blocked: search, job, sync, summary and reconnect work without a cookie', { timeout: SCENARIO_MS, skip: MOCK ? 'real mode serves two sites' : false }, async (t) => {
  const { page, context, errors } = await newPage(t);
  assert.notEqual(new URL(ctx.env.demoUrl).hostname, new URL(ctx.env.serviceUrl).hostname, 'two sites');
  const calls = []; /* what the browser sends to the service's API and files */
  context.on('request', (r) => { if (/^\/(api|files)\//.test(new URL(r.url()).pathname) && r.url().startsWith(ctx.env.serviceUrl)) calls.push(r); });
  let frame = await openModal(page);

  /* The block is effective: a cookie set in the frame is not kept, and the cookie session of
   * before (set by /modal?session= inside the frame) is not sent back; the Bearer token works. */
  const s = await http('POST', `${ctx.env.serviceUrl}/api/sessions`, {}, { Authorization: 'Bearer ' + ctx.env.apiKey });
  assert.equal(s.status, 201);
  const probe = await frame.evaluate(async (tok) => {
    document.cookie = 'hs_probe=1; Path=/; SameSite=None; Secure';
    const kept = document.cookie;
    const legacy = await fetch('modal?session=' + tok, { credentials: 'include' });
    const byCookie = await fetch('api/session', { credentials: 'include' });
    const byHeader = await fetch('api/session', { headers: { Authorization: 'Bearer ' + tok } });
    return { kept, legacy: legacy.status, byCookie: byCookie.status, byHeader: byHeader.status };
  }, s.data.session);
  assert.equal(probe.kept, '', 'a cookie set in the frame is blocked');
  assert.equal(probe.legacy, 200);
  assert.equal(probe.byCookie, 401, 'the session cookie set in the frame is not sent');
  assert.equal(probe.byHeader, 200);
  assert.deepEqual(await context.cookies(ctx.env.serviceUrl), [], 'no cookie of the service was stored');
  calls.length = 0; /* from here on, what the modal sends */

  /* search, job (photos fetched with the header), sync (progress by a ticket), summary */
  await searchFor(page, frame, 'Meadow');
  await openJobFromResults(frame, 15084301);
  await frame.waitForFunction(() => [...document.querySelectorAll('.hs-card img.hs-thumb')]
    .some((i) => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0), null, { timeout: 15000 });
  await shot(page, 'cross-site-job-photos');
  await frame.locator('.hs-card[data-model-id="17338401"] .hs-check').click();
  await frame.click('#hs-sync');
  await waitSummary(frame);
  assert.match(await frame.locator('.hs-sum-group.is-synced').innerText(), /House/);
  await shot(page, 'cross-site-summary');
  assert.ok(calls.some((r) => /\/api\/syncs\/[^/]+\/events\?ticket=[0-9a-f]{64}$/.test(r.url())), 'the progress stream opened with a ticket');
  const res = await openedFile(page, frame.locator('.hs-sum-group.is-synced a.hs-file[data-kind="pdf"]'));
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /pdf/);
  for (const r of calls) {
    const h = await r.allHeaders();
    assert.equal(h.cookie, undefined, `no cookie on ${r.url()}`);
    if (!/ticket=/.test(r.url())) assert.match(h.authorization || '', /^Bearer [0-9a-f]{64}$/, `the session header on ${r.url()}`);
  }
  const done = await finishModal(page, frame);
  assert.deepEqual(done.detail.synced_models.map((m) => m.id), [17338401]);

  /* Hover refuses the org's grant: "Reconnect Hover" opens the connect flow in a new tab (a
   * ticket, then the flow's own first-party cookie); its last page tells the modal. */
  frame = await openModal(page);
  const f = await http('POST', `${ctx.env.sandboxUrl}/__sandbox/faults`, { path: '/api/v3/jobs*', status: 401 });
  assert.equal(f.status, 201);
  await searchFor(page, frame, 'Sunset Boulevard', { fill: true });
  const link = frame.locator('#hs-search-notice a.hs-connect', { hasText: 'Reconnect Hover' });
  await link.waitFor();
  await shot(page, 'cross-site-reconnect');
  await http('DELETE', `${ctx.env.sandboxUrl}/__sandbox/faults`);
  const [tab] = await Promise.all([context.waitForEvent('page'), link.click()]);
  await tab.waitForSelector('#allow', { timeout: 15000 });
  assert.equal(new URL(tab.url()).origin, ctx.env.sandboxUrl, "Hover's authorize page");
  await Promise.all([tab.waitForNavigation(), tab.click('#allow')]);
  await tab.waitForSelector('text=Connected Hover org', { timeout: 15000 });
  await shot(tab, 'cross-site-reconnected-tab');
  /* The notice says so until the search it starts answers (then it is cleared): the mark stays. */
  await frame.waitForSelector('#hs-search-notice[data-connected]', { state: 'attached', timeout: 15000 });
  await frame.waitForFunction(() => !document.querySelector('#hs-search-notice a.hs-connect') &&
    document.querySelector('[role="option"][data-job-id="15084308"]'), null, { timeout: 20000 });
  await shot(page, 'cross-site-searching-again');
  await tab.close();
  assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
});

test('two CRM tenants: the modal of each one sees its own Hover org only', { timeout: SCENARIO_MS, skip: MOCK ? 'real mode connects a second org' : false }, async (t) => {
  /* The operator connects the second org as "coastal": a connect ticket of the API key opened
   * in the browser, Hover's page, the org chosen there. */
  const tk = await http('POST', `${ctx.env.serviceUrl}/api/tickets`, { purpose: 'connect', connection: 'coastal' },
    { Authorization: 'Bearer ' + ctx.env.apiKey });
  assert.equal(tk.status, 201);
  const op = await ctx.browser.newContext();
  t.after(() => op.close());
  const opPage = await op.newPage();
  await opPage.goto(tk.data.url);
  await opPage.selectOption('select[name="org_id"]', '471122');
  await Promise.all([opPage.waitForNavigation(), opPage.click('#allow')]);
  assert.match(await opPage.textContent('h1'), /Connected Hover org 471122/);
  /* a job of that org, as Hover lists it */
  const tok = await http('POST', `${ctx.env.sandboxUrl}/__sandbox/tokens`, { org_id: 471122 });
  const list = await http('GET', `${ctx.env.sandboxUrl}/api/v3/jobs?per=5&reconstruction_state=completed`, undefined,
    { Authorization: 'Bearer ' + tok.data.access_token });
  const jobB = list.data.results[0];
  /* the first org's job is in the service's index (the API key sees every org) */
  assert.equal((await http('GET', `${ctx.env.serviceUrl}/api/jobs/${JOB_ONE_FAILED}`, undefined,
    { Authorization: 'Bearer ' + ctx.env.apiKey })).status, 200);

  /* The CRM page of that tenant: its session has "coastal" only. */
  const { page, errors } = await newPage(t, undefined, '&connection=coastal');
  const frame = await openModal(page);
  assert.equal(await frame.locator('#hs-org').isHidden(), true, 'one organization: no picker');
  await searchFor(page, frame, jobB.name, { fill: true });
  assert.equal(await frame.locator(`[role="option"][data-job-id="${jobB.id}"]`).count(), 1, "the tenant's own job");
  await searchFor(page, frame, 'Orchard', { fill: true });
  assert.equal(await frame.locator(`[role="option"][data-job-id="${JOB_ONE_FAILED}"]`).count(), 0,
    "the other org's job (in the service's index) is not listed");
  await shot(page, 'tenant-coastal-search');
  await searchFor(page, frame, jobB.name, { fill: true });
  await openJobFromResults(frame, jobB.id);
  assert.match(await frame.locator('#hs-job').innerText(), new RegExp('#' + jobB.id));
  await shot(page, 'tenant-coastal-job');
  assert.deepEqual(errors, []);

  /* The first tenant's page does not list the second org's job. */
  const other = await newPage(t, undefined, '&connection=default');
  const frameA = await openModal(other.page);
  await searchFor(other.page, frameA, jobB.name, { fill: true });
  assert.equal(await frameA.locator(`[role="option"][data-job-id="${jobB.id}"]`).count(), 0);
  assert.deepEqual(other.errors, []);
});

/* ---------- error states ---------- */

/* Last of the real-mode tests: the service keeps answering from its index for a few seconds after
 * Hover refused it. The sandbox answers 429 to every job search, the service's search retries,
 * gives up, and answers with what it has stored plus hover_error. */
test('Hover rate-limited: the search answers from what is stored, with a calm notice', { timeout: SCENARIO_MS, skip: MOCK ? 'the mock variant is in mock.test.mjs' : false }, async (t) => {
  const { page, errors } = await newPage(t);
  const frame = await openModal(page);
  const f = await http('POST', `${ctx.env.sandboxUrl}/__sandbox/faults`, { path: '/api/v3/jobs*', status: 429 });
  assert.equal(f.status, 201);
  t.after(() => http('DELETE', `${ctx.env.sandboxUrl}/__sandbox/faults`));
  await frame.fill('#hs-q', 'Whitfield'); /* a query Hover was not asked yet; the index knows the job */
  await frame.waitForFunction(() => document.getElementById('hs-results-wrap').dataset.query === 'Whitfield', null, { timeout: 40000 });
  const notice = await frame.locator('#hs-search-notice').innerText();
  assert.match(notice, /Hover is busy right now[\s\S]*may be incomplete/);
  assert.equal(await frame.locator('#hs-search-notice [role="alert"]').count(), 0, 'a calm notice (status), not an alert');
  assert.ok(await frame.locator(`[role="option"][data-job-id="${JOB_ONE_FAILED}"]`).count() === 1, 'the stored job is still listed');
  await shot(page, 'rate-limited-search');
  assert.deepEqual(errors, []);
});
