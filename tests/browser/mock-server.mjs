// mock-server.mjs: a small stand-in for `hoversync serve` (docs/API.md) with canned sandbox data,
// for fast UI work and the MOCK=1 mode of the browser tests. It serves the real files of web/,
// sets the hs_session cookie on GET /modal, checks X-CSRF-Token, answers search, job, sync (with
// progress over Server-Sent Events), records feed, files and images, runs a pending pass, and
// has a demo-CRM listener that fills the placeholders of web/demo/crm.html.
// Test hooks (not part of the API): POST /__mock/models/{id} {"state"}, POST /__mock/faults
// {"route":"search"|"job"|"sync","code":..,"count":N}, POST /__mock/config {"latency_ms":..}.
//
// Standalone: node tests/browser/mock-server.mjs [port] [demo-port]
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const WEB = path.resolve(here, '../../web');
const API_KEY = 'test-key';

function showcase() {
  const t = (d) => new Date(d).toISOString();
  const cust = (name) => ({ name, email: name.toLowerCase().replace(/\s+/g, '.') + '@example.com', phone: '(208) 555-0142' });
  const addr = (line1, city, region, postal) => ({ line1, line2: '', city, region, postal_code: postal, country: 'US', full: `${line1}, ${city}, ${region} ${postal}` });
  const m = (id, name, state, deliverable = 'complete') => ({ id, name, state, deliverable, synced: false, selection: null });
  return [
    { id: 15084301, name: 'Main House', address: addr('4312 Meadow Drive', 'Santa Maria', 'CA', '93455'), customer: cust('Dana Whitfield'), external_identifier: '8675309', updated_at: t('2025-03-17T01:00:00Z'),
      models: [m(17338401, 'House', 'complete'), m(17338402, 'Detached Garage', 'complete'), m(17338403, 'Shed', 'complete')] },
    { id: 15084302, name: 'Whitfield Garage Addition', address: addr('118 Orchard Lane', 'Boise', 'ID', '83702'), customer: cust('Marcus Whitfield'), external_identifier: '8675310', updated_at: t('2025-04-02T15:20:00Z'),
      models: [m(17338404, 'House', 'complete'), m(17338405, 'Detached Garage', 'failed'), m(17338406, 'Shed', 'complete')] },
    { id: 15084303, name: 'Harbor View Remodel', address: addr('77 Harbor View Road', 'Portland', 'ME', '04101'), customer: cust('Grace Holloway'), external_identifier: null, updated_at: t('2025-05-11T09:05:00Z'),
      models: [m(17338407, 'House', 'complete'), m(17338408, 'Garage', 'processing')] },
    { id: 15084304, name: 'Cedar Ridge Estate', address: addr('9 Cedar Ridge Court', 'Asheville', 'NC', '28801'), customer: cust('Thomas Brennan'), external_identifier: 'CRM-20417', updated_at: t('2025-02-21T12:00:00Z'),
      models: [m(17338409, 'House', 'failed'), m(17338410, 'Detached Garage', 'failed')] },
    { id: 15084305, name: 'Lakeside Interior', address: addr('2200 Lakeside Avenue', 'Madison', 'WI', '53703'), customer: cust('Priya Natarajan'), external_identifier: '8675311', updated_at: t('2025-01-30T10:00:00Z'),
      models: [m(17338411, 'First Floor', 'complete', 'interior'), m(17338412, 'Second Floor', 'complete', 'interior'), m(17338413, 'Basement', 'complete', 'interior')] },
    { id: 15084306, name: 'Pine Street Draft', address: addr('45 Pine Street', 'Burlington', 'VT', '05401'), customer: null, external_identifier: null, updated_at: t('2025-06-01T08:00:00Z'), models: [] },
    { id: 15084308, name: 'Sunset Boulevard Roof', address: addr('1550 Sunset Boulevard', 'Phoenix', 'AZ', '85004'), customer: cust('Luis Herrera'), external_identifier: null, updated_at: t('2024-11-12T18:00:00Z'),
      models: [m(17338415, 'House', 'complete', 'roof_only')] },
    { id: 15084310, name: 'Riverside TLA', address: addr('880 Riverside Drive', 'Austin', 'TX', '78704'), customer: cust('Sam Okafor'), external_identifier: null, updated_at: t('2024-10-02T18:00:00Z'),
      models: [m(17338417, 'House', 'complete', 'total_living_area')] },
    { id: 15100004, name: 'Orchard Hills Residence', address: addr('2716 Orchard Hills Drive', 'Fresno', 'CA', '93720'), customer: cust('Alex Moreno'), external_identifier: null, updated_at: t('2024-08-02T18:00:00Z'),
      models: [m(17400011, 'House', 'complete', 'roof_only'), m(17400012, 'Carport', 'complete', 'roof_only')] },
  ];
}

function jobState(j) {
  const s = j.models.map((m) => m.state);
  if (!s.length || s.every((x) => x === 'uploading')) return 'draft';
  if (s.includes('processing')) return 'processing';
  if (s.some((x) => x === 'uploading')) return 'processing';
  if (s.every((x) => x === 'failed')) return 'failed';
  return 'completed';
}

function figuresFor(model) {
  const seed = model.id % 97;
  if (model.deliverable === 'interior') return { roof_area_sqft: null, roof_facets: null, predominant_pitch: null, siding_area_sqft: null, living_area_sqft: 800 + seed * 7, openings_count: 9 };
  if (model.deliverable === 'total_living_area') return { roof_area_sqft: null, roof_facets: null, predominant_pitch: null, siding_area_sqft: null, living_area_sqft: 1900 + seed * 11, openings_count: null };
  const big = model.name === 'House';
  return {
    roof_area_sqft: Math.round((big ? 2400 : 520) + seed * 13.37) + 0.25,
    roof_facets: big ? 12 : 4,
    predominant_pitch: big ? '6/12' : '4/12',
    ridges_ft: 48.5, valleys_ft: 10, eaves_ft: 120.25, hips_ft: null, rakes_ft: null,
    siding_area_sqft: model.deliverable === 'roof_only' ? null : Math.round((big ? 1830 : 610) + seed * 5),
    facade_area_sqft: null, openings_count: model.deliverable === 'roof_only' ? null : (big ? 21 : 3),
    openings_area_sqft: null, living_area_sqft: null,
  };
}

export async function startMock(opts = {}) {
  const jobs = showcase();
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const modelIndex = new Map();
  for (const j of jobs) for (const m of j.models) modelIndex.set(m.id, { job: j, model: m });
  const sessions = new Map(); // token -> {csrf}
  const tickets = new Map(); // ticket -> {sess, path}: single use
  const syncs = new Map();
  const files = new Map(); // sha -> {type, body}
  const records = { seq: 0, jobs: new Map(), models: new Map(), artifacts: [] };
  const selections = new Map(); // model id -> {job_id, status}
  const faults = [];
  const config = { latencyMs: opts.latencyMs ?? 0, randomLatencyMs: opts.randomLatencyMs ?? 0, artifactMs: opts.artifactMs ?? 90, connections: opts.connections || [{ key: 'default', owner_id: 463605, connected_at: '2025-03-01T10:00:00.000Z', status: 'ok' }] };
  const pendingIntervalMs = opts.pendingIntervalMs ?? 1000;
  const requests = [];
  let demoOrigin = null;

  function mintSession() {
    const s = { session: crypto.randomBytes(32).toString('hex'), csrf: crypto.randomBytes(18).toString('base64url') };
    sessions.set(s.session, s);
    return s;
  }

  function send(res, status, body, headers = {}) {
    const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
    res.end(data);
  }
  const err = (res, status, code, message, headers) => send(res, status, { error: { code, message, status } }, headers);

  function takeFault(route) {
    const i = faults.findIndex((f) => f.route === route);
    if (i < 0) return null;
    const f = faults[i];
    if (--f.count <= 0) faults.splice(i, 1);
    return f;
  }

  function cookieSession(req) {
    const m = /(?:^|;\s*)hs_session=([^;]+)/.exec(req.headers.cookie || '');
    return m && sessions.get(m[1]);
  }

  function summary(j) {
    return { id: j.id, name: j.name, address: j.address, reconstruction_state: jobState(j), updated_at: j.updated_at, models_count: j.models.length, complete_models: j.models.filter((m) => m.state === 'complete').length };
  }

  function jobView(j) {
    return {
      id: j.id, name: j.name, address: j.address, customer: j.customer, reconstruction_state: jobState(j), external_identifier: j.external_identifier,
      models: j.models.map((m) => ({
        id: m.id, name: m.name, state: m.state, deliverable: m.deliverable, complete: m.state === 'complete',
        thumbnail_url: m.state === 'failed' ? null : '/api/images/' + (166283800 + (m.id % 1000)),
        artifacts: m.state === 'complete' ? [{ kind: 'measurements.pdf' }, { kind: 'measurements.json' }] : [],
        synced: records.models.has(m.id) && !!records.models.get(m.id).synced_updated_at,
        selection: selections.has(m.id) ? selections.get(m.id).status : null,
      })),
    };
  }

  function storeFile(type, body) {
    const sha = crypto.createHash('sha256').update(body).digest('hex');
    files.set(sha, { type, body });
    return sha;
  }

  function storeModel(j, m) {
    const seq = ++records.seq;
    records.jobs.set(j.id, { id: j.id, name: j.name, external_identifier: j.external_identifier, reconstruction_state: jobState(j), org_id: 463605, address: { ...j.address }, customer: j.customer, hover_updated_at: j.updated_at, change_seq: seq });
    const pdf = storeFile('application/pdf', Buffer.from(`%PDF-1.4\n% ${j.name} / ${m.name}\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n`));
    const figures = figuresFor(m);
    const json = storeFile('application/json', Buffer.from(JSON.stringify({ version: 'summarized_json', job_id: j.id, model_id: m.id, model_name: m.name, ...figures })));
    const img = storeFile('image/svg+xml', Buffer.from(houseSvg(m.id)));
    records.models.set(m.id, { id: m.id, job_id: j.id, name: m.name, state: m.state, deliverable: m.deliverable, synced_updated_at: new Date().toISOString(), change_seq: seq, measurements: figures });
    records.artifacts = records.artifacts.filter((a) => a.model_id !== m.id);
    for (const [kind, sha, type, image_id] of [['measurements.pdf', pdf, 'application/pdf', null], ['measurements.json', json, 'application/json', null], ['image.' + (166283800 + (m.id % 1000)), img, 'image/svg+xml', 166283800 + (m.id % 1000)]])
      records.artifacts.push({ model_id: m.id, job_id: j.id, kind, sha256: sha, bytes: files.get(sha).body.length, content_type: type, path: 'blobs/' + sha, image_id, change_seq: seq });
    selections.set(m.id, { job_id: j.id, status: 'synced' });
    return { pdf: '/files/' + pdf, measurements: '/files/' + json };
  }

  function runSync(s) {
    const j = byId.get(s.job_id);
    s.status = 'running';
    s.version++;
    const work = s.models.filter((x) => x.result === null);
    let i = 0;
    const tick = () => {
      const cur = work[i];
      if (!cur) {
        s.status = 'done';
        const r = s.models.map((x) => x.result);
        s.result = r.every((x) => x === 'synced' || x === 'pending') ? 'synced' : r.some((x) => x === 'synced') ? 'partial' : 'failed';
        s.version++;
        notify(s);
        return;
      }
      const m = j.models.find((x) => x.id === cur.id);
      if (cur.artifacts_done < cur.artifacts_total) cur.artifacts_done++;
      if (cur.artifacts_done >= cur.artifacts_total) {
        if (takeFault('artifact')) {
          cur.result = 'error';
          cur.message = 'measurements.pdf: upstream_unavailable';
        } else {
          cur.result = 'synced';
          const rec = storeModel(j, m);
          cur.records = rec;
          s.records[m.id] = rec;
        }
        i++;
      }
      s.version++;
      notify(s);
      setTimeout(tick, config.artifactMs);
    };
    setTimeout(tick, config.artifactMs);
  }

  function notify(s) {
    for (const res of s.listeners) writeEvent(res, s);
    if (s.status === 'done' || s.status === 'failed') {
      for (const res of s.listeners) {
        res.write('event: done\ndata: ' + JSON.stringify(syncView(s)) + '\n\n');
        res.end();
      }
      s.listeners.clear();
    }
  }
  const syncView = (s) => ({ id: s.id, job_id: s.job_id, status: s.status, result: s.result, models: s.models.map((m) => ({ ...m })), records: s.records });
  const writeEvent = (res, s) => res.write('event: progress\ndata: ' + JSON.stringify(syncView(s)) + '\n\n');

  // the pending pass: models chosen "sync when ready" that Hover finished meanwhile
  const pendingTimer = setInterval(() => {
    for (const [mid, sel] of selections) {
      if (sel.status !== 'pending') continue;
      const { job, model } = modelIndex.get(mid);
      if (model.state === 'complete') storeModel(job, model);
      else if (model.state === 'failed') sel.status = 'failed_upstream';
    }
  }, pendingIntervalMs);

  async function readBody(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const t = Buffer.concat(chunks).toString();
    return t ? JSON.parse(t) : {};
  }

  function serveFile(res, rel, type, extra = {}) {
    const p = path.join(WEB, rel);
    fs.readFile(p, (e, data) => {
      if (e) return err(res, 404, 'not_found', 'no such file');
      res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store', ...extra });
      res.end(data);
    });
  }

  // a reply that is not HTTP: fetch rejects (a reset connection would be retried by the browser)
  const brokenReply = (req) => req.socket.end('garbage\r\n\r\n');

  const delay = () => new Promise((r) => setTimeout(r, config.latencyMs + Math.random() * config.randomLatencyMs));

  async function handle(req, res) {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    requests.push({ method: req.method, path: p, query: url.search });
    const origin = req.headers.origin;
    const cors = {};
    if (origin && origin === demoOrigin) {
      cors['Access-Control-Allow-Origin'] = origin;
      cors['Access-Control-Allow-Credentials'] = 'true';
      cors['Vary'] = 'Origin';
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...cors, 'Access-Control-Allow-Methods': 'GET, POST', 'Access-Control-Allow-Headers': 'Authorization, Content-Type, X-CSRF-Token' });
      return res.end();
    }
    for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);

    if (p === '/healthz') return send(res, 200, { status: 'ok', db: 'ok', version: 'mock' });
    if (p === '/hoversync-modal.js') return serveFile(res, 'hoversync-modal.js', 'text/javascript; charset=utf-8');
    if (p === '/modal.js') return serveFile(res, 'modal.js', 'text/javascript; charset=utf-8');
    if (p === '/modal.css') return serveFile(res, 'modal.css', 'text/css; charset=utf-8');
    if (p === '/modal') {
      const tok = url.searchParams.get('session');
      const headers = { 'Content-Security-Policy': `frame-ancestors 'self' ${demoOrigin}; default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'` };
      if (tok && sessions.has(tok)) headers['Set-Cookie'] = `hs_session=${tok}; Path=/; HttpOnly; SameSite=Lax`;
      return serveFile(res, 'modal.html', 'text/html; charset=utf-8', headers);
    }
    if (p === '/connect') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end('<!doctype html><title>Connect Hover</title><h1>Connect Hover (mock)</h1>');
    }

    // test hooks
    if (p.startsWith('/__mock/')) {
      const body = req.method === 'POST' ? await readBody(req) : {};
      let m;
      if ((m = /^\/__mock\/models\/(\d+)$/.exec(p))) {
        const e = modelIndex.get(Number(m[1]));
        if (!e) return err(res, 404, 'not_found', 'no model');
        e.model.state = body.state;
        e.job.updated_at = new Date().toISOString();
        return send(res, 200, jobView(e.job));
      }
      if (p === '/__mock/faults') {
        faults.push({ route: body.route, code: body.code, count: body.count ?? 1, status: body.status });
        return send(res, 201, { ok: true });
      }
      if (p === '/__mock/config') {
        if ('latency_ms' in body) config.latencyMs = body.latency_ms;
        if ('random_latency_ms' in body) config.randomLatencyMs = body.random_latency_ms;
        if ('connections' in body) config.connections = body.connections;
        return send(res, 200, { ok: true });
      }
      if (p === '/__mock/requests') return send(res, 200, { requests });
      return err(res, 404, 'not_found', 'no hook');
    }

    if (!p.startsWith('/api/') && !p.startsWith('/files/')) return err(res, 404, 'not_found', 'not found');

    // auth
    let bearer = /^Bearer (.+)$/.exec(req.headers.authorization || '');
    let sess = null;
    const ticket = tickets.get(url.searchParams.get('ticket'));
    if (ticket) {
      tickets.delete(url.searchParams.get('ticket'));
      if (ticket.path !== p) return err(res, 401, 'unauthorized', 'ticket for another request');
      sess = ticket.sess;
    } else if (bearer && sessions.has(bearer[1])) {
      sess = sessions.get(bearer[1]); /* a session as a Bearer token: no csrf */
      bearer = null;
    } else if (bearer) {
      if (bearer[1] !== API_KEY) return err(res, 401, 'unauthorized', 'bad API key');
    } else {
      sess = cookieSession(req);
      if (!sess) return err(res, 401, 'unauthorized', 'no session');
      if (req.method === 'POST' && req.headers['x-csrf-token'] !== sess.csrf) return err(res, 403, 'forbidden', 'bad csrf token');
    }
    if (origin && origin !== demoOrigin && origin !== serviceOrigin) return err(res, 403, 'forbidden', 'origin not allowed');

    let m;
    if (p === '/api/sessions' && req.method === 'POST') {
      if (!bearer) return err(res, 403, 'forbidden', 'API key only');
      const s = mintSession();
      return send(res, 201, { session: s.session, csrf_token: s.csrf, expires_at: new Date(Date.now() + 3600e3).toISOString(), modal_url: serviceOrigin + '/modal?session=' + s.session });
    }
    if (p === '/api/tickets' && req.method === 'POST') {
      const body = await readBody(req);
      const path = body.purpose === 'events' ? `/api/syncs/${body.sync_id}/events` : body.purpose === 'file' ? `/files/${body.sha256}` : '/connect';
      const t = crypto.randomBytes(32).toString('hex');
      tickets.set(t, { sess, path });
      return send(res, 201, { ticket: t, purpose: body.purpose, url: `${serviceOrigin}${path}?ticket=${t}` });
    }
    if (p === '/api/connections') return send(res, 200, config.connections);
    if (p === '/api/jobs') {
      await delay();
      const f = takeFault('search');
      const q = (url.searchParams.get('q') || '').toLowerCase();
      if (f && f.code !== 'hover_rate_limited') return f.code === 'network' ? brokenReply(req) : err(res, f.status || 503, f.code, 'injected: ' + f.code);
      let found = jobs.filter((j) => !q || [j.name, j.address.full, j.customer && j.customer.name].join(' | ').toLowerCase().includes(q));
      found.sort((a, b) => b.updated_at.localeCompare(a.updated_at));
      const page = Math.max(1, Number(url.searchParams.get('page')) || 1);
      const per = Math.min(100, Number(url.searchParams.get('per')) || 20);
      const slice = found.slice((page - 1) * per, page * per);
      const answer = { source: 'local+hover', results: slice.map(summary), page, more: found.length > page * per };
      if (f && f.code === 'hover_rate_limited') { answer.source = 'local'; answer.hover_error = { code: 'rate_limited', message: 'Hover rate limit reached' }; }
      return send(res, 200, answer);
    }
    if ((m = /^\/api\/jobs\/(\d+)$/.exec(p))) {
      await delay();
      const f = takeFault('job');
      if (f) return f.code === 'network' ? brokenReply(req) : err(res, f.status || 503, f.code, 'injected: ' + f.code);
      const j = byId.get(Number(m[1]));
      if (!j) return err(res, 404, 'not_found', `job ${m[1]} not found`);
      return send(res, 200, jobView(j));
    }
    if ((m = /^\/api\/images\/(\d+)$/.exec(p))) {
      res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'max-age=3600' });
      return res.end(houseSvg(Number(m[1])));
    }
    if (p === '/api/syncs' && req.method === 'POST') {
      const f = takeFault('sync');
      if (f) return err(res, f.status || 503, f.code, 'injected: ' + f.code);
      let body;
      try { body = await readBody(req); } catch (e) { return err(res, 400, 'bad_request', 'malformed JSON'); }
      const j = byId.get(body.job_id);
      if (!j) return err(res, 404, 'not_found', 'job not found');
      const ids = [...(body.model_ids || []), ...(body.when_ready || [])];
      if (!ids.length) return err(res, 400, 'bad_request', 'nothing selected');
      const s = { id: crypto.randomBytes(8).toString('hex'), job_id: j.id, status: 'queued', result: null, models: [], records: {}, version: 0, listeners: new Set() };
      for (const id of ids) {
        const mm = j.models.find((x) => x.id === id);
        if (!mm) return err(res, 400, 'bad_request', `model ${id} is not on job ${j.id}`);
        const row = { id, name: mm.name, result: null, message: null, artifacts_done: 0, artifacts_total: 0 };
        if (mm.state === 'complete') row.artifacts_total = mm.deliverable === 'roof_only' ? 6 : 9;
        else if (mm.state === 'failed') { row.result = 'failed_upstream'; row.message = 'Hover could not build this model'; }
        else { row.result = 'pending'; row.message = 'waiting for Hover (state ' + mm.state + ')'; selections.set(id, { job_id: j.id, status: 'pending' }); }
        s.models.push(row);
      }
      syncs.set(s.id, s);
      setTimeout(() => runSync(s), 150);
      return send(res, 202, { id: s.id, status: 'queued' });
    }
    if ((m = /^\/api\/syncs\/([0-9a-f]+)(\/events)?$/.exec(p))) {
      const s = syncs.get(m[1]);
      if (!s) return err(res, 404, 'not_found', 'no such sync');
      if (!m[2]) return send(res, 200, syncView(s));
      if (opts.sseBroken) return err(res, 500, 'internal', 'SSE disabled in this mock run');
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
      writeEvent(res, s);
      if (s.status === 'done' || s.status === 'failed') {
        res.write('event: done\ndata: ' + JSON.stringify(syncView(s)) + '\n\n');
        return res.end();
      }
      s.listeners.add(res);
      req.on('close', () => s.listeners.delete(res));
      return;
    }
    if (p === '/api/records') {
      const since = Number(url.searchParams.get('since')) || 0;
      return send(res, 200, {
        cursor: records.seq,
        jobs: [...records.jobs.values()].filter((x) => x.change_seq > since),
        models: [...records.models.values()].filter((x) => x.change_seq > since),
        artifacts: records.artifacts.filter((x) => x.change_seq > since),
      });
    }
    if ((m = /^\/files\/([0-9a-f]{64})$/.exec(p))) {
      const f = files.get(m[1]);
      if (!f) return err(res, 404, 'not_found', 'no such file');
      res.writeHead(200, { 'Content-Type': f.type });
      return res.end(f.body);
    }
    return err(res, 404, 'not_found', 'not found');
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => { try { err(res, 500, 'internal', String(e)); } catch (e2) { /* gone */ } });
  });
  await new Promise((r) => server.listen(opts.port || 0, '127.0.0.1', r));
  const serviceOrigin = 'http://127.0.0.1:' + server.address().port;

  const demo = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname !== '/' && u.pathname !== '/crm.html') { res.writeHead(404); return res.end('not found'); }
    const s = mintSession();
    fs.readFile(path.join(WEB, 'demo/crm.html'), 'utf8', (e, html) => {
      if (e) { res.writeHead(500); return res.end(String(e)); }
      html = html.replaceAll('__HOVERSYNC_URL__', serviceOrigin).replaceAll('__HOVERSYNC_SESSION__', s.session).replaceAll('__HOVERSYNC_CSRF__', s.csrf);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(html);
    });
  });
  await new Promise((r) => demo.listen(opts.demoPort || 0, '127.0.0.1', r));
  demoOrigin = 'http://127.0.0.1:' + demo.address().port;

  return {
    url: serviceOrigin,
    demoUrl: demoOrigin + '/',
    requests,
    mintSession,
    async completeModel(id) {
      const e = modelIndex.get(id);
      e.model.state = 'complete';
    },
    async close() {
      clearInterval(pendingTimer);
      for (const s of syncs.values()) for (const r of s.listeners) r.end();
      server.closeAllConnections();
      demo.closeAllConnections();
      await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => demo.close(r))]);
    },
  };
}

function houseSvg(id) {
  const hues = [205, 25, 140, 280, 45, 190];
  const hue = hues[id % hues.length];
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 64" width="96" height="64">
<rect width="96" height="64" fill="hsl(205 70% 82%)"/><rect y="46" width="96" height="18" fill="hsl(110 35% 45%)"/>
<rect x="26" y="28" width="44" height="24" fill="hsl(${hue} 35% 70%)"/><path d="M20 30 48 12 76 30z" fill="hsl(${hue} 30% 35%)"/>
<rect x="44" y="38" width="9" height="14" fill="#5b4636"/><rect x="31" y="34" width="8" height="7" fill="#eef6ff"/><rect x="58" y="34" width="8" height="7" fill="#eef6ff"/></svg>`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const m = await startMock({ port: Number(process.argv[2]) || 0, demoPort: Number(process.argv[3]) || 0, randomLatencyMs: 80 });
  console.log(`mock hoversync ${m.url}  demo CRM ${m.demoUrl}`);
}
