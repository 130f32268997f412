// mock.test.mjs: browser tests of the modal's error states that only a stand-in service can
// bring about on demand (Hover rate-limited or refusing the grant, the network failing, slow and
// out-of-order answers, Server-Sent Events that break), against tests/browser/mock-server.mjs,
// which answers as docs/API.md says and injects those faults. Run by tests/browser/run.sh with
// modal.test.mjs, in every mode. Screenshots: test-output/browser/mock-faults/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ctx, SCENARIO_MS, start, stop, http, shot, newPage, openModal, searchFor, waitQuery, openJobFromResults,
  waitSummary, JOB_ONE_FAILED,
} from './helpers.mjs';

before(() => start({ mock: true, out: 'mock-faults' }));
after(stop);

test('error states: rate limited, reconnect required, network error with Retry, no results', { timeout: SCENARIO_MS }, async (t) => {
  const { page } = await newPage(t);
  const frame = await openModal(page);
  const fault = (body) => http('POST', `${ctx.env.serviceUrl}/__mock/faults`, body);

  await searchFor(page, frame, 'zzzz-no-such-job');
  assert.match(await frame.locator('#hs-results-empty').innerText(), /No jobs match “zzzz-no-such-job”[\s\S]*Try an address or a customer name/);
  await shot(page, 'state-no-results');

  await fault({ route: 'search', code: 'hover_rate_limited', count: 1 });
  await searchFor(page, frame, 'Orchard', { fill: true });
  assert.match(await frame.locator('#hs-search-notice').innerText(), /Hover is busy right now[\s\S]*may be incomplete/);
  assert.ok(await frame.locator('[role="option"]').count() > 0, 'local results still shown');
  await shot(page, 'state-rate-limited');

  await fault({ route: 'search', code: 'reconnect_required', status: 401, count: 1 });
  await frame.fill('#hs-q', 'Harbor');
  await waitQuery(frame, 'Harbor');
  const link = frame.locator('#hs-search-notice a', { hasText: 'Reconnect Hover' });
  assert.equal(await link.getAttribute('target'), '_blank');
  assert.match(await link.getAttribute('href'), /\/connect\?connection=default$/, 'the connection to connect again');
  await shot(page, 'state-reconnect');

  await fault({ route: 'search', code: 'network', count: 1 });
  await frame.fill('#hs-q', 'Meadow');
  await waitQuery(frame, 'Meadow');
  assert.match(await frame.locator('#hs-search-notice').innerText(), /Can’t reach hoversync/);
  await shot(page, 'state-network-error');
  await frame.click('#hs-search-notice .hs-retry');
  await frame.waitForSelector('[role="option"][data-job-id="15084301"]');
  assert.equal(await frame.locator('#hs-search-notice .hs-notice').count(), 0);

  /* loading: a slow answer shows skeletons and aria-busy */
  await http('POST', `${ctx.env.serviceUrl}/__mock/config`, { latency_ms: 1500 });
  await frame.fill('#hs-q', '');
  await frame.fill('#hs-q', 'Cedar');
  await frame.waitForSelector('#hs-results-wrap[aria-busy="true"]');
  await shot(page, 'state-loading');
  await http('POST', `${ctx.env.serviceUrl}/__mock/config`, { latency_ms: 0 });
  await frame.waitForSelector('[role="option"][data-job-id="15084304"]');

  /* a job that fails to load offers Retry */
  await fault({ route: 'job', code: 'upstream_unavailable', count: 1 });
  await frame.click('[role="option"][data-job-id="15084304"]');
  await frame.waitForSelector('#hs-job-notice .hs-retry');
  await shot(page, 'state-job-error');
  await frame.click('#hs-job-notice .hs-retry');
  await frame.waitForSelector('.hs-cards .hs-card');
  assert.match(await frame.locator('#hs-job').innerText(), /Hover could not build any model of this job/);
  await shot(page, 'state-all-failed');
});

test('out-of-order answers are ignored: the list matches the last query', { timeout: SCENARIO_MS }, async (t) => {
  const { page } = await newPage(t);
  const frame = await openModal(page);
  await http('POST', `${ctx.env.serviceUrl}/__mock/config`, { random_latency_ms: 500 });
  t.after(() => http('POST', `${ctx.env.serviceUrl}/__mock/config`, { random_latency_ms: 0 }));
  await frame.focus('#hs-q');
  for (const q of ['Or', 'Orc', 'Orcha', 'Orchard', 'Orchard L']) {
    await frame.fill('#hs-q', q);
    await page.waitForTimeout(180); /* past the debounce: each one is sent */
  }
  await frame.waitForFunction(() => document.getElementById('hs-results-wrap').getAttribute('aria-busy') === 'false' &&
    /found|match/.test(document.getElementById('hs-search-status').textContent), null, { timeout: 5000 });
  await page.waitForTimeout(700); /* any straggler would have arrived */
  const ids = await frame.$$eval('[role="option"]', (l) => l.map((o) => Number(o.dataset.jobId)));
  assert.deepEqual(ids, [JOB_ONE_FAILED]);
  const sent = ctx.env.mock.requests.filter((r) => r.path === '/api/jobs' && /q=Or/.test(r.query)).length;
  assert.ok(sent >= 3, `several searches were sent (${sent})`);
});

test('SSE failing falls back to polling', { timeout: SCENARIO_MS }, async (t) => {
  const { startMock } = await import('./mock-server.mjs');
  const broken = await startMock({ sseBroken: true });
  t.after(() => broken.close());
  const context = await ctx.browser.newContext({ viewport: { width: 1024, height: 768 } });
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(broken.demoUrl);
  await page.waitForFunction(() => !document.getElementById('import-hover').disabled);
  const frame = await openModal(page);
  await searchFor(page, frame, 'Meadow');
  await openJobFromResults(frame, 15084301);
  await frame.click('#hs-select-all');
  await frame.click('#hs-sync');
  await waitSummary(frame);
  assert.match(await frame.locator('.hs-sum-group.is-synced').innerText(), /House[\s\S]*Detached Garage[\s\S]*Shed/);
  const polls = broken.requests.filter((r) => /^\/api\/syncs\/[0-9a-f]+$/.test(r.path)).length;
  assert.ok(polls >= 1, 'polled GET /api/syncs/{id}');
});
