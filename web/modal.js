/* modal.js: the Hover import modal (GET /modal, inside the iframe that hoversync-modal.js opens).
 *
 * Flow (Hover's Search & Sync workflow): search a job (type-ahead over GET /api/jobs), open it
 * (GET /api/jobs/{id}), choose complete models (and "sync when ready" for processing ones), sync
 * (POST /api/syncs), follow the progress (SSE GET /api/syncs/{id}/events, polling as fallback),
 * show the summary, and hand the result to the host page (postMessage to the parent origin the
 * embed script gave in ?origin=).
 *
 * Same origin as the API. The session token comes from the embed script (postMessage, with
 * ?handoff=message) or the URL fragment (#session=, the modal_url of POST /api/sessions); it is
 * kept in memory only and sent as `Authorization: Bearer` on every call, so no cookie is needed
 * (a CRM on another site is where browsers block third-party cookies) and no CSRF token either.
 * What cannot send a header gets a ticket (POST /api/tickets): the progress stream, stored files
 * and the connect flow opened in a new tab; photos are fetched with the header. Without a token
 * (a page opened with the legacy ?session=), the hs_session cookie and X-CSRF-Token are used.
 * Every string from Hover goes into the DOM as text, never as HTML. */
'use strict';

(() => {
  const params = new URLSearchParams(location.search);
  /* the csrf token: ?csrf= (the embed script), else the meta tag the service adds, else
   * GET /api/session (see start) */
  let CSRF = params.get('csrf') ||
    (document.querySelector('meta[name="hoversync-csrf"]') || {}).content || '';
  const BASE = new URL('./', location.href); /* the service, also behind a path prefix */
  const PARENT_ORIGIN = parentOrigin(params.get('origin'));
  const HANDOFF_MS = 10000;
  const SEARCH_DEBOUNCE_MS = 150;
  const SEARCH_PER = 20;
  const POLL_MS = 1000;

  /* The session token, in memory only: from the fragment (then removed from the address), or
   * later from the embed script's message. */
  let TOKEN = null;
  let sessionReady = null; /* settles once the session was handed over (or will not be) */
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (/^[0-9a-f]{64}$/.test(fragment.get('session') || '')) TOKEN = fragment.get('session');
  /* A legacy ?session= has done its job (the service set the cookie when it served this page). */
  if (params.has('session') || fragment.has('session')) {
    params.delete('session');
    const qs = params.toString();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
  }

  /* The embed script answers "ready" with the session (to this origin only); only the parent
   * page it named may hand it over. */
  function awaitSession() {
    if (TOKEN || params.get('handoff') !== 'message' || !PARENT_ORIGIN) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, HANDOFF_MS);
      function done() {
        clearTimeout(timer);
        window.removeEventListener('message', onMessage);
        resolve();
      }
      function onMessage(ev) {
        const d = ev.data;
        if (ev.source !== window.parent || ev.origin !== PARENT_ORIGIN || !d || typeof d !== 'object' ||
          d.source !== 'hoversync-host' || d.type !== 'session') return;
        if (/^[0-9a-f]{64}$/.test(String(d.session))) TOKEN = d.session;
        done();
      }
      window.addEventListener('message', onMessage);
    });
  }

  function parentOrigin(given) {
    const valid = (o) => {
      try {
        return o && new URL(o).origin === o ? o : null;
      } catch (e) {
        return null;
      }
    };
    if (valid(given)) return given;
    if (location.ancestorOrigins && location.ancestorOrigins.length)
      return valid(location.ancestorOrigins[0]);
    return null;
  }

  /* ---------- small helpers ---------- */

  const $ = (id) => document.getElementById(id);

  /* h('div', {class: 'x', onclick: fn}, child, 'text', ...): builds DOM, text stays text. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svgIcon(path, size = 18) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', size);
    svg.setAttribute('height', size);
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', path);
    p.setAttribute('fill', 'none');
    p.setAttribute('stroke', 'currentColor');
    p.setAttribute('stroke-width', '2');
    p.setAttribute('stroke-linecap', 'round');
    p.setAttribute('stroke-linejoin', 'round');
    svg.append(p);
    return svg;
  }
  const ICONS = {
    info: 'M12 8h.01M11 12h1v5h1M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z',
    warn: 'M12 9v4m0 4h.01M10.3 3.9 2.4 17.5A2 2 0 0 0 4.1 20.5h15.8a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z',
    error: 'M12 8v5m0 3h.01M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z',
    check: 'M5 12.5l4.5 4.5L19 7.5',
    clock: 'M12 7v5l3 2M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z',
    x: 'M7 7l10 10M17 7 7 17',
    file: 'M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5',
    house: 'M3 11.5 12 4l9 7.5M5.5 10v9.5h13V10',
    ext: 'M14 4h6v6M20 4l-9 9M18 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1h5',
  };

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  function codeForStatus(status) {
    if (status === 401) return 'unauthorized';
    if (status === 403) return 'forbidden';
    if (status === 404) return 'not_found';
    if (status === 429) return 'rate_limited';
    if (status === 502 || status === 504) return 'upstream_error';
    if (status === 503) return 'upstream_unavailable';
    return status >= 500 ? 'internal' : 'bad_request';
  }

  /* The headers and credentials of a call: the Bearer token, or (legacy) the cookie and CSRF. */
  function authInit(method, headers) {
    if (TOKEN) {
      headers.Authorization = 'Bearer ' + TOKEN;
      return 'omit';
    }
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = CSRF;
    return 'same-origin';
  }

  async function api(path, { method = 'GET', body, signal } = {}) {
    await sessionReady;
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const credentials = authInit(method, headers);
    let res;
    try {
      res = await fetch(new URL(path, BASE), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials,
        cache: 'no-store',
        signal,
      });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError('network', 'hoversync could not be reached.', 0);
    }
    if (res.status === 204) return {};
    let data = null;
    try {
      const text = await res.text();
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      data = null;
    }
    if (!res.ok) {
      const er = data && typeof data.error === 'object' ? data.error : null;
      throw new ApiError((er && er.code) || codeForStatus(res.status),
        (er && er.message) || 'HTTP ' + res.status, res.status);
    }
    if (data === null || typeof data !== 'object')
      throw new ApiError('bad_response', 'hoversync sent an answer this page does not understand.',
        res.status);
    return data;
  }

  const fileUrl = (p) => {
    try {
      return new URL(p, BASE).href;
    } catch (e) {
      return null;
    }
  };

  /* A ticket for what cannot send the header (POST /api/tickets): {ticket, url, expires_at}. */
  const ticket = (body) => api('api/tickets', { method: 'POST', body });

  /* Opens a ticket's URL in a new tab from a click: the tab is opened at once (a popup blocker
   * allows it only during the click), then sent where the ticket leads. keepOpener: the connect
   * flow's last page tells this page that the org is connected. */
  async function openWithTicket(ev, body, keepOpener) {
    if (!TOKEN) return; /* the cookie of the legacy page goes with the link itself */
    ev.preventDefault();
    const w = window.open('about:blank', '_blank');
    if (!w) return;
    if (!keepOpener) w.opener = null;
    try {
      w.location.replace((await ticket(body)).url);
    } catch (e) {
      w.close();
    }
  }

  /* Photos: fetched with the header, shown from object URLs (revoked with the job view). */
  const photoUrls = [];
  async function loadPhoto(img, url, fallback) {
    if (!TOKEN) {
      img.src = url;
      return;
    }
    try {
      const headers = {};
      const res = await fetch(url, { headers, credentials: authInit('GET', headers), cache: 'default' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const src = URL.createObjectURL(await res.blob());
      photoUrls.push(src);
      img.src = src;
    } catch (e) {
      img.replaceWith(fallback());
    }
  }
  function dropPhotos() {
    while (photoUrls.length) URL.revokeObjectURL(photoUrls.pop());
  }

  /* ---------- wording ---------- */

  const JOB_STATES = {
    completed: 'Completed', complete: 'Completed', failed: 'Failed', processing: 'Processing',
    processing_upload: 'Processing', draft: 'Draft', uploading: 'Uploading',
  };
  const MODEL_STATES = {
    complete: 'Complete', completed: 'Complete', failed: 'Failed', processing: 'Processing',
    uploading: 'Uploading',
  };
  const DELIVERABLES = {
    complete: 'Complete exterior: roof and walls', roof_only: 'Roof only',
    total_living_area: 'Total living area', total_living_area_plus: 'Total living area plus roof',
    capture_only: 'Photos only (no measurements)', interior: 'Interior level',
  };
  const RECORD_LABELS = {
    pdf: 'Measurements PDF', 'measurements.pdf': 'Measurements PDF',
    json: 'Measurements (JSON)', measurements: 'Measurements (JSON)', measurements_json: 'Measurements (JSON)',
    'measurements.json': 'Measurements (JSON)', summarized_json: 'Measurements (JSON)',
    full_json: 'Full measurements (JSON)', 'measurements.full_json': 'Full measurements (JSON)',
    xlsx: 'Spreadsheet', 'measurements.xlsx': 'Spreadsheet',
  };

  const humanize = (s) => String(s).replace(/[._]+/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
  const stateClass = (s) => 'hs-badge hs-badge-' + String(s || 'unknown').replace(/[^a-z_]/gi, '');
  const plural = (n, one, many) => n + ' ' + (n === 1 ? one : many);

  function jobBadge(state) {
    return h('span', { class: stateClass(state) }, JOB_STATES[state] || humanize(state || 'Unknown'));
  }
  function modelBadge(state) {
    return h('span', { class: stateClass(state) }, MODEL_STATES[state] || humanize(state || 'Unknown'));
  }

  function addressText(a) {
    if (!a) return '';
    if (typeof a === 'string') return a;
    if (a.full) return a.full;
    const city = [a.city, [a.region || a.state, a.postal_code].filter(Boolean).join(' ')]
      .filter(Boolean).join(', ');
    return [a.line1 || a.line_1, a.line2 || a.line_2, city].filter(Boolean).join(', ');
  }

  function dateText(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return '';
    return new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' })
      .format(d);
  }

  function modelsText(j) {
    const n = Number(j.models_count) || 0;
    if (!n) return 'No models yet';
    const c = Number(j.complete_models) || 0;
    return plural(n, 'model', 'models') + ', ' + c + ' complete';
  }

  /* Text with the query's words marked (case-insensitive), as nodes. */
  function marked(text, q) {
    text = String(text || '');
    const words = String(q || '').trim().split(/\s+/).filter((w) => w.length >= 2)
      .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    if (!words.length) return [text];
    const re = new RegExp('(' + words.join('|') + ')', 'gi');
    return text.split(re).map((part, i) => (i % 2 ? h('mark', {}, part) : part));
  }

  /* ---------- notices: rate limit, reconnect, network ---------- */

  /* A notice for an API error; retry: a function or null. */
  function errorNotice(err, retry, what) {
    const code = err && err.code;
    let kind = 'error', title, text, extra = null;
    if (code === 'rate_limited') {
      kind = 'info';
      title = 'Hover is busy right now.';
      text = 'Hover limits how often it can be asked. Wait a moment and try again.';
    } else if (code === 'reconnect_required') {
      kind = 'warn';
      title = 'Hover needs to be reconnected.';
      text = 'The connection to your Hover account was revoked or has expired.';
      extra = reconnectLink();
    } else if (code === 'unauthorized') {
      kind = 'warn';
      title = 'This import window has expired.';
      text = 'Close it and choose "Import from Hover" again.';
      retry = null;
    } else if (code === 'not_found') {
      title = 'Job not found.';
      text = 'Hover has no such job for this organization. It may have been deleted.';
      retry = null;
    } else if (code === 'forbidden') {
      title = 'Not allowed.';
      text = (err && err.message) || 'This request was refused.';
      retry = null;
    } else if (code === 'network') {
      title = 'Can\u2019t reach hoversync.';
      text = 'Check your connection' + (what ? ' and try ' + what + ' again.' : '.');
    } else if (code === 'upstream_unavailable' || code === 'upstream_error') {
      title = 'Hover isn\u2019t answering.';
      text = 'Hover could not be reached or sent an error. Try again in a moment.';
    } else {
      title = 'Something went wrong.';
      text = (err && err.message) || 'An unexpected error happened.';
    }
    return notice(kind, title, text, extra, retry);
  }

  /* "Reconnect Hover" / "Connect Hover": the connect flow in a new tab, for the connection
   * chosen (none: a new org). */
  function connectLink(label, key) {
    const href = new URL('connect' + (key ? '?' + new URLSearchParams({ connection: key }) : ''), BASE).href;
    return h('a', {
      class: 'hs-btn hs-btn-secondary hs-btn-small hs-connect', href, target: '_blank',
      rel: TOKEN ? null : 'noopener',
      onclick: (ev) => openWithTicket(ev, key ? { purpose: 'connect', connection: key } : { purpose: 'connect' }, true),
    }, label, h('span', { class: 'hs-visually-hidden' }, ' (opens in a new window)'),
    svgIcon(ICONS.ext, 16));
  }
  const reconnectLink = () => connectLink('Reconnect Hover', connection);

  /* The connect tab's last page says the org is connected: look again. */
  window.addEventListener('message', (ev) => {
    const d = ev.data;
    if (ev.origin !== location.origin || !d || d.type !== 'hoversync:connected') return;
    setNotice('hs-search-notice', notice('info', 'Hover is connected.', 'Searching again\u2026', null, null));
    $('hs-search-notice').dataset.connected = String(d.connection || '');
    loadConnections().then(() => runSearch(false));
  });

  function notice(kind, title, text, extra, retry) {
    const role = kind === 'error' ? 'alert' : 'status';
    const actions = [];
    if (extra) actions.push(extra);
    if (retry) actions.push(h('button', { type: 'button', class: 'hs-btn hs-btn-secondary hs-btn-small hs-retry', onclick: retry }, 'Retry'));
    return h('div', { class: 'hs-notice hs-notice-' + kind, role },
      svgIcon(ICONS[kind] || ICONS.info, 20),
      h('div', { class: 'hs-notice-text' }, h('strong', {}, title), ' ', h('span', {}, text)),
      actions.length ? h('div', { class: 'hs-notice-actions' }, actions) : null);
  }

  function setNotice(areaId, node) {
    const area = $(areaId);
    area.replaceChildren();
    if (node) area.append(node);
  }

  /* ---------- parent window ---------- */

  function post(type, payload) {
    if (!PARENT_ORIGIN || window.parent === window) return;
    window.parent.postMessage(Object.assign({ source: 'hoversync', version: 1, type }, payload || {}),
      PARENT_ORIGIN);
  }

  let finishedResult = null; /* set once a sync ended: closing then counts as Done */
  let closed = false;

  function requestClose() {
    if (closed) return;
    if (finishedResult) return finish();
    closed = true;
    post('close', sync.id ? { sync_id: sync.id, status: 'running' } : {});
    if (!PARENT_ORIGIN || window.parent === window) closed = false; /* standalone: nothing to close */
  }

  function finish() {
    if (closed || !finishedResult) return;
    closed = true;
    post('done', { result: finishedResult });
    if (!PARENT_ORIGIN || window.parent === window) closed = false;
  }

  /* ---------- views ---------- */

  const views = ['search', 'job', 'sync'];
  let view = 'search';

  function show(name) {
    view = name;
    for (const v of views) $('view-' + v).hidden = v !== name;
    $('hs-sync').hidden = name !== 'job';
    $('hs-done').hidden = name !== 'sync' || !finishedResult;
    $('hs-cancel').hidden = name === 'sync' && !!finishedResult;
    $('hs-cancel').textContent = name === 'sync' ? 'Close' : 'Cancel';
    if (name !== 'job') $('hs-selection').textContent = '';
    document.querySelector('.hs-body').scrollTop = 0;
  }

  /* ---------- connections ---------- */

  let connection = params.get('connection') || '';
  let connections = [];

  async function loadConnections() {
    try {
      const data = await api('api/connections');
      connections = Array.isArray(data) ? data : Array.isArray(data.connections) ? data.connections : [];
    } catch (e) {
      connections = []; /* the search still works with the service's default connection */
      if (e && e.code === 'reconnect_required')
        setNotice('hs-search-notice', errorNotice(e, null));
      return;
    }
    if (connections.length === 0) {
      setNotice('hs-search-notice', notice('warn', 'No Hover account connected',
        'Connect your Hover organization to search its jobs.', connectLink('Connect Hover', null),
        null));
      return;
    }
    const usable = (c) => !c.status || /^(ok|active|connected)$/i.test(c.status);
    if (!connections.some((c) => c.key === connection)) {
      const ok = connections.find(usable);
      connection = (ok || connections[0]).key;
    }
    const chosen = connections.find((c) => c.key === connection);
    if (chosen && !usable(chosen)) {
      setNotice('hs-search-notice', notice('warn', 'Hover needs to be reconnected.',
        'Only jobs hoversync already knows can be shown until you reconnect.', reconnectLink(), null));
    }
    if (connections.length < 2) return;
    const sel = $('hs-connection');
    sel.replaceChildren(...connections.map((c) => {
      let label = c.name || c.owner_name || c.key;
      if (c.owner_id && !c.name && !c.owner_name) label += ' (org ' + c.owner_id + ')';
      if (c.status && !/^(ok|active|connected)$/i.test(c.status)) label += ' \u2013 reconnect needed';
      return h('option', { value: c.key, selected: c.key === connection }, label);
    }));
    $('hs-org').hidden = false;
  }

  $('hs-connection').addEventListener('change', (e) => {
    connection = e.target.value;
    search.page = 1;
    runSearch(true);
  });

  /* ---------- search ---------- */

  const input = $('hs-q');
  const list = $('hs-results');
  const search = {
    seq: 0,          /* the latest request started; older answers are ignored */
    controller: null,
    timer: 0,
    q: '',           /* the query of the results shown */
    page: 1,
    more: false,
    results: [],
    active: -1,
    loaded: false,
    lastError: null,
  };

  input.addEventListener('input', () => {
    clearTimeout(search.timer);
    search.timer = setTimeout(() => runSearch(false), SEARCH_DEBOUNCE_MS);
  });

  input.addEventListener('keydown', (e) => {
    if (e.isComposing) return;
    const n = search.results.length;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (!n) return;
      let i = search.active;
      if (e.key === 'ArrowDown') i = i < 0 ? 0 : (i + 1) % n;
      else i = i < 0 ? n - 1 : (i - 1 + n) % n;
      setActive(i);
    } else if (e.key === 'Enter') {
      e.preventDefault();
      /* a query typed but not answered yet: answer it now rather than open a stale result */
      if (search.timer || input.value.trim() !== search.q) {
        clearTimeout(search.timer);
        search.timer = 0;
        if (input.value.trim() !== search.q) return void runSearch(false, true);
      }
      const i = search.active >= 0 ? search.active : n ? 0 : -1;
      if (i >= 0) openJob(search.results[i]);
    } else if (e.key === 'Home' && e.ctrlKey && n) {
      e.preventDefault();
      setActive(0);
    } else if (e.key === 'End' && e.ctrlKey && n) {
      e.preventDefault();
      setActive(n - 1);
    }
  });

  function setActive(i) {
    const opts = list.querySelectorAll('[role="option"]');
    opts.forEach((o, k) => o.setAttribute('aria-selected', k === i ? 'true' : 'false'));
    search.active = i;
    if (i >= 0 && opts[i]) {
      input.setAttribute('aria-activedescendant', opts[i].id);
      opts[i].scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  }

  function setSearchBusy(busy, hasOld) {
    $('hs-results-wrap').setAttribute('aria-busy', busy ? 'true' : 'false');
    $('hs-search-spinner').hidden = !busy;
    /* skeletons only when there is nothing to show meanwhile; old results just dim */
    $('hs-results-skeleton').hidden = !(busy && !hasOld);
    list.classList.toggle('is-stale', busy && hasOld);
    if (busy && !hasOld) {
      list.replaceChildren();
      $('hs-results-empty').hidden = true;
      $('hs-more').hidden = true;
    }
  }

  /* Runs the query in the box (page 1), or the next page when `next`. `openFirst`: Enter was
   * pressed before the answer came: open the first result when it does. */
  async function runSearch(next, openFirst) {
    search.timer = 0;
    const q = input.value.trim();
    const page = next ? search.page + 1 : 1;
    if (search.controller) search.controller.abort();
    const controller = new AbortController();
    search.controller = controller;
    const seq = ++search.seq;
    setSearchBusy(true, search.results.length > 0);
    if (!next) $('hs-search-status').textContent = q ? 'Searching\u2026' : 'Loading recent jobs\u2026';
    const qs = new URLSearchParams({ q, page: String(page), per: String(SEARCH_PER) });
    if (connection) qs.set('connection', connection);
    let data;
    try {
      data = await api('api/jobs?' + qs, { signal: controller.signal });
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (seq !== search.seq) return;
      search.controller = null;
      setSearchBusy(false, false);
      search.lastError = e;
      if (!next) {
        search.results = [];
        search.q = q;
        list.replaceChildren();
        input.setAttribute('aria-expanded', 'false');
        setActive(-1);
        $('hs-more').hidden = true;
      }
      $('hs-search-status').textContent = '';
      $('hs-results-wrap').dataset.query = q;
      setNotice('hs-search-notice', errorNotice(e, () => {
        setNotice('hs-search-notice', null);
        runSearch(next);
      }, 'the search'));
      return;
    }
    if (seq !== search.seq) return; /* an older answer arriving late */
    search.controller = null;
    search.lastError = null;
    setSearchBusy(false, false);
    const results = Array.isArray(data.results) ? data.results : [];
    search.q = q;
    search.page = Number(data.page) || page;
    search.more = !!data.more;
    search.results = next ? search.results.concat(results) : results;
    search.loaded = true;
    search.hover = data.hover || null;
    search.hoverError = !!data.hover_error;
    renderResults(next ? search.results.length - results.length : 0);
    searchNotice(data);
    if (openFirst && search.results.length) openJob(search.results[0]);
  }

  /* Hover failing does not fail the search: the answer says so in hover_error. */
  function searchNotice(data) {
    let he = data.hover_error;
    if (!he) return setNotice('hs-search-notice', null);
    if (typeof he === 'string') he = { code: he };
    const code = he.code || he.error || '';
    if (code === 'rate_limited') {
      setNotice('hs-search-notice', notice('info', 'Hover is busy right now.',
        'These results come from jobs hoversync already knows and may be incomplete. Keep typing or try again in a minute.',
        null, null));
    } else if (code === 'reconnect_required') {
      setNotice('hs-search-notice', notice('warn', 'Hover needs to be reconnected.',
        'Only jobs hoversync already knows are shown until you reconnect.', reconnectLink(), null));
    } else {
      setNotice('hs-search-notice', notice('info', 'Hover didn\u2019t answer.',
        'These results come from jobs hoversync already knows and may be incomplete.', null,
        () => runSearch(false)));
    }
  }

  function renderResults(keepFrom) {
    const q = search.q;
    $('hs-results-wrap').dataset.query = q; /* what the list answers (tests wait on it) */
    const items = search.results.map((j, i) => {
      const addr = addressText(j.address);
      const date = dateText(j.updated_at);
      return h('li', {
        id: 'hs-opt-' + j.id, role: 'option', class: 'hs-option', 'aria-selected': 'false',
        'data-job-id': j.id, 'data-index': i,
        onclick: () => openJob(j),
        onmousemove: () => { if (search.active !== i) setActive(i); },
      },
      h('span', { class: 'hs-opt-main' },
        h('span', { class: 'hs-opt-name' }, marked(j.name || 'Job ' + j.id, q)),
        h('span', { class: 'hs-opt-addr' }, marked(addr, q))),
      h('span', { class: 'hs-opt-meta' },
        jobBadge(j.reconstruction_state),
        h('span', { class: 'hs-opt-models' }, modelsText(j)),
        date ? h('time', { class: 'hs-opt-date', datetime: j.updated_at }, date) : null));
    });
    list.replaceChildren(...items);
    list.classList.remove('is-stale');
    input.setAttribute('aria-expanded', items.length ? 'true' : 'false');
    const keep = keepFrom > 0 && search.active >= 0 ? search.active : -1;
    setActive(keep);
    const empty = $('hs-results-empty');
    const short = search.hover === 'short' && q.length > 0;
    if (!items.length) {
      empty.replaceChildren(...(!q ? [
        h('p', { class: 'hs-empty-title' }, 'Search your Hover jobs'),
        h('p', {}, 'Type an address, a job name or a customer\u2019s name.')]
        : short ? [
          h('p', { class: 'hs-empty-title' }, 'Keep typing\u2026'),
          h('p', {}, 'Hover is searched from 3 characters on.')]
          : search.hoverError ? [
            h('p', { class: 'hs-empty-title' }, 'No stored jobs match \u201c', q, '\u201d'),
            h('p', {}, 'Hover could not be searched just now. Try again in a minute.')]
            : [
              h('p', { class: 'hs-empty-title' }, 'No jobs match \u201c', q, '\u201d'),
              h('p', {}, 'Try an address or a customer name.')]));
      empty.hidden = false;
    } else {
      empty.hidden = true;
    }
    $('hs-more').hidden = !search.more;
    const n = search.results.length;
    $('hs-search-status').textContent = !n ? (q && !short ? 'No jobs match.' : '')
      : q ? plural(n, 'job', 'jobs') + (search.more ? ' shown, more available' : ' found') +
        (short ? ' (Hover is searched from 3 characters on)' : '')
        : 'Recently updated jobs';
  }

  $('hs-more').addEventListener('click', () => runSearch(true));

  /* ---------- job view ---------- */

  const jobState = {
    job: null,
    summary: null,
    selected: new Set(),   /* complete models to sync now */
    whenReady: new Set(),  /* processing models to sync when ready */
    controller: null,
  };

  function openJob(summary) {
    clearTimeout(search.timer);
    jobState.summary = summary;
    jobState.job = null;
    jobState.selected.clear();
    jobState.whenReady.clear();
    show('job');
    loadJob();
  }

  async function loadJob() {
    const summary = jobState.summary;
    if (jobState.controller) jobState.controller.abort();
    const controller = new AbortController();
    jobState.controller = controller;
    setNotice('hs-job-notice', null);
    const box = $('hs-job');
    box.setAttribute('aria-busy', 'true');
    box.replaceChildren(
      h('div', { class: 'hs-job-head' },
        h('h2', { id: 'hs-job-name', class: 'hs-h2', tabindex: '-1' }, summary.name || 'Job ' + summary.id),
        h('p', { class: 'hs-muted' }, addressText(summary.address))),
      h('p', { class: 'hs-status', role: 'status' }, h('span', { class: 'hs-spinner', 'aria-hidden': 'true' }), ' Loading the job from Hover\u2026'),
      h('ul', { class: 'hs-cards', 'aria-hidden': 'true' },
        [0, 1].map(() => h('li', { class: 'hs-card hs-card-skel' }, h('span', { class: 'hs-thumb' }), h('span', { class: 'hs-skel-line' }), h('span', { class: 'hs-skel-line short' })))));
    updateSelection();
    $('hs-job-name').focus();
    const qs = connection && connections.length > 1 ? '?' + new URLSearchParams({ connection }) : '';
    try {
      const job = await api('api/jobs/' + encodeURIComponent(summary.id) + qs, { signal: controller.signal });
      if (controller !== jobState.controller) return;
      jobState.job = job;
      box.setAttribute('aria-busy', 'false');
      renderJob();
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (controller !== jobState.controller) return;
      box.setAttribute('aria-busy', 'false');
      box.querySelectorAll('.hs-status, .hs-cards').forEach((n) => n.remove());
      setNotice('hs-job-notice', errorNotice(e, () => loadJob(), 'again'));
    }
  }

  const isComplete = (m) => m.complete === true || m.state === 'complete' || m.state === 'completed';
  const isFailed = (m) => m.state === 'failed';
  const isWaiting = (m) => !isComplete(m) && !isFailed(m);
  const isPendingSel = (m) => m.selection === 'pending';

  function renderJob() {
    dropPhotos();
    const job = jobState.job;
    const models = Array.isArray(job.models) ? job.models : [];
    const complete = models.filter(isComplete);
    const customer = job.customer || {};
    const facts = [];
    const addr = addressText(job.address) || addressText(jobState.summary.address);
    if (addr) facts.push(['Address', addr]);
    const cust = [customer.name, customer.email, customer.phone].filter(Boolean)
      .map((v) => h('span', { class: v === customer.email ? null : 'hs-nowrap' }, v));
    facts.push(['Customer', cust.length ? cust.flatMap((n, i) => (i ? [' \u00b7 ', n] : [n]))
      : 'No customer on this job']);
    facts.push(['Hover job', '#' + job.id + (job.external_identifier ? ' \u00b7 CRM id ' + job.external_identifier : '')]);

    const head = h('div', { class: 'hs-job-head' },
      h('div', { class: 'hs-job-title' },
        h('h2', { id: 'hs-job-name', class: 'hs-h2', tabindex: '-1' }, job.name || 'Job ' + job.id),
        jobBadge(job.reconstruction_state)),
      h('dl', { class: 'hs-facts' }, facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))));

    const modelsHead = h('div', { class: 'hs-models-head' },
      h('h3', { class: 'hs-h3', id: 'hs-models-title' }, 'Models', ' ', h('span', { class: 'hs-count' }, '(' + models.length + ')')),
      complete.length > 1 ? h('button', { type: 'button', class: 'hs-btn hs-btn-quiet hs-btn-small', id: 'hs-select-all', onclick: toggleAll }, 'Select all complete') : null);

    let body;
    if (!models.length) {
      body = h('div', { class: 'hs-empty' },
        h('p', { class: 'hs-empty-title' }, 'This job has no models yet'),
        h('p', {}, 'Hover is still receiving its photos. Come back when it has processed them.'));
    } else {
      body = h('ul', { class: 'hs-cards', 'aria-labelledby': 'hs-models-title' }, models.map(modelCard));
    }
    const intro = complete.length === 0 && models.length
      ? notice('info', 'Nothing to sync yet.', models.every(isFailed)
        ? 'Hover could not build any model of this job.'
        : 'No model is complete yet; choose \u201cSync when ready\u201d to get it as soon as Hover finishes.', null, null)
      : null;
    $('hs-job').replaceChildren(head, modelsHead, intro || '', body);
    updateSelection();
  }

  function modelCard(m) {
    const id = 'hs-m-' + m.id;
    const nameId = id + '-name';
    const descId = id + '-desc';
    /* Hover serves the photos of complete models only: others get the placeholder */
    let thumb = thumbPlaceholder();
    if (m.thumbnail_url && isComplete(m)) {
      thumb = h('img', { class: 'hs-thumb', alt: 'Photo of the ' + (m.name || 'model'), width: 96, height: 64,
        onerror: (e) => e.target.replaceWith(thumbPlaceholder()) });
      loadPhoto(thumb, fileUrl(m.thumbnail_url), thumbPlaceholder);
    }
    const chips = [];
    if (m.synced) chips.push(h('span', { class: 'hs-chip' }, svgIcon(ICONS.check, 14), 'Synced before'));
    if (isPendingSel(m)) chips.push(h('span', { class: 'hs-chip' }, svgIcon(ICONS.clock, 14), 'Will sync when ready'));

    let control;
    const cls = ['hs-card'];
    if (isComplete(m)) {
      cls.push('is-selectable');
      control = h('label', { class: 'hs-check' },
        h('input', { type: 'checkbox', id, 'data-model-id': m.id, 'aria-describedby': descId,
          checked: jobState.selected.has(m.id),
          onchange: (e) => { e.target.checked ? jobState.selected.add(m.id) : jobState.selected.delete(m.id); updateSelection(); } }),
        h('span', { class: 'hs-check-box', 'aria-hidden': 'true' }, svgIcon(ICONS.check, 14)),
        h('span', {}, 'Sync ', h('span', { class: 'hs-visually-hidden' }, m.name || 'this model')));
    } else if (isFailed(m)) {
      cls.push('is-disabled');
      control = h('p', { class: 'hs-card-why', id: id + '-why' }, svgIcon(ICONS.error, 16), 'Hover could not build this model');
    } else {
      cls.push('is-waiting');
      const pending = isPendingSel(m);
      control = h('label', { class: 'hs-switch' },
        h('input', { type: 'checkbox', role: 'switch', id, 'data-model-id': m.id, 'aria-describedby': descId,
          checked: pending || jobState.whenReady.has(m.id), disabled: pending,
          onchange: (e) => { e.target.checked ? jobState.whenReady.add(m.id) : jobState.whenReady.delete(m.id); updateSelection(); } }),
        h('span', { class: 'hs-switch-track', 'aria-hidden': 'true' }, h('span', { class: 'hs-switch-thumb' })),
        h('span', {}, 'Sync when ready'));
    }
    const desc = isComplete(m) ? 'Ready to sync.'
      : isFailed(m) ? 'Hover could not build this model.'
        : isPendingSel(m) ? 'Already waiting: it will sync when Hover finishes.'
          : 'Hover is still ' + (m.state === 'uploading' ? 'receiving the photos of' : 'processing') + ' this model.';
    const card = h('li', {
      class: cls.join(' '), 'data-model-id': m.id, 'data-state': m.state || '', 'aria-disabled': isFailed(m) ? 'true' : null,
      onclick: (e) => {
        if (!isComplete(m) || e.target.closest('input, label, a, button')) return;
        const cb = document.getElementById(id);
        cb.click();
        cb.focus();
      },
    },
    thumb,
    h('div', { class: 'hs-card-body' },
      h('div', { class: 'hs-card-title' },
        h('span', { class: 'hs-card-name', id: nameId }, m.name || 'Model ' + m.id),
        modelBadge(m.state)),
      h('p', { class: 'hs-card-deliv' }, DELIVERABLES[m.deliverable] || humanize(m.deliverable || '')),
      h('p', { class: 'hs-visually-hidden', id: descId }, desc),
      chips.length ? h('div', { class: 'hs-chips' }, chips) : null,
      control));
    return card;
  }

  function thumbPlaceholder() {
    return h('span', { class: 'hs-thumb hs-thumb-empty', 'aria-hidden': 'true' }, svgIcon(ICONS.house, 28));
  }

  function toggleAll() {
    const complete = (jobState.job.models || []).filter(isComplete);
    const all = complete.every((m) => jobState.selected.has(m.id));
    for (const m of complete) {
      if (all) jobState.selected.delete(m.id);
      else jobState.selected.add(m.id);
      const cb = document.getElementById('hs-m-' + m.id);
      if (cb) cb.checked = !all;
    }
    updateSelection();
  }

  function updateSelection() {
    const n = jobState.selected.size;
    const w = jobState.whenReady.size;
    const btn = $('hs-sync');
    btn.disabled = !jobState.job || n + w === 0;
    btn.textContent = n + w === 0 ? 'Sync' : n === 0 ? 'Sync when ready'
      : 'Sync ' + plural(n, 'model', 'models');
    const parts = [];
    if (n) parts.push(plural(n, 'model', 'models') + ' selected');
    if (w) parts.push(w + ' to sync when ready');
    $('hs-selection').textContent = !jobState.job ? '' : parts.length ? parts.join(' \u00b7 ')
      : 'Choose the models to sync.';
    const all = $('hs-select-all');
    if (all && jobState.job) {
      const complete = jobState.job.models.filter(isComplete);
      const every = complete.length && complete.every((m) => jobState.selected.has(m.id));
      all.textContent = every ? 'Clear selection' : 'Select all complete';
      all.setAttribute('aria-pressed', every ? 'true' : 'false');
    }
  }

  $('hs-back').addEventListener('click', () => {
    if (jobState.controller) jobState.controller.abort();
    jobState.controller = null;
    show('search');
    input.focus();
    if (!search.loaded) runSearch(false);
  });

  /* ---------- sync ---------- */

  const sync = { id: null, es: null, pollTimer: 0, pollFailures: 0, state: null, models: [], job: null, finished: false };

  $('hs-sync').addEventListener('click', startSync);

  async function startSync() {
    const job = jobState.job;
    if (!job) return;
    const modelIds = [...jobState.selected];
    const whenReady = [...jobState.whenReady];
    if (!modelIds.length && !whenReady.length) return;
    const btn = $('hs-sync');
    btn.disabled = true;
    btn.textContent = 'Starting\u2026';
    setNotice('hs-job-notice', null);
    let answer;
    try {
      const body = { job_id: job.id, model_ids: modelIds, when_ready: whenReady };
      if (connection && connections.length > 1) body.connection = connection;
      answer = await api('api/syncs', { method: 'POST', body });
    } catch (e) {
      updateSelection();
      setNotice('hs-job-notice', errorNotice(e, () => startSync(), 'the sync'));
      $('hs-job-notice').scrollIntoView({ block: 'nearest' });
      return;
    }
    const byId = new Map((job.models || []).map((m) => [m.id, m]));
    sync.id = answer.id;
    sync.job = job;
    sync.finished = false;
    sync.models = modelIds.concat(whenReady).map((id) => ({
      id, name: (byId.get(id) || {}).name || 'Model ' + id, whenReady: whenReady.includes(id),
      deliverable: (byId.get(id) || {}).deliverable,
    }));
    sync.state = { id: answer.id, job_id: job.id, status: answer.status || 'queued', models: [] };
    finishedResult = null;
    show('sync');
    $('hs-sync-title').textContent = 'Syncing ' + (job.name || 'job ' + job.id);
    $('hs-summary').hidden = true;
    $('hs-summary').replaceChildren();
    setNotice('hs-sync-notice', null);
    renderProgress();
    $('hs-sync-title').focus();
    follow();
  }

  async function follow() {
    if (typeof EventSource === 'undefined') return poll();
    let es;
    try {
      /* An EventSource sends no header: a ticket for this one stream stands for the session. */
      const url = TOKEN ? (await ticket({ purpose: 'events', sync_id: sync.id })).url
        : new URL('api/syncs/' + encodeURIComponent(sync.id) + '/events', BASE);
      if (sync.finished) return;
      es = new EventSource(url);
    } catch (e) {
      return poll();
    }
    sync.es = es;
    const onState = (ev) => {
      let st = null;
      try {
        st = ev.data ? JSON.parse(ev.data) : null;
      } catch (e) {
        st = null;
      }
      return st && typeof st === 'object' && Array.isArray(st.models) ? st : null;
    };
    es.addEventListener('progress', (ev) => {
      const st = onState(ev);
      if (st) applyState(st);
    });
    es.addEventListener('done', (ev) => {
      es.close();
      sync.es = null;
      const st = onState(ev);
      if (st && isFinal(st)) applyState(st);
      else refreshOnce(); /* the final state from GET, in case done carried none */
    });
    es.onerror = () => {
      if (sync.finished) return es.close();
      /* EventSource would reconnect by itself; the contract offers polling, which also survives
       * proxies that cut streams: switch to it. */
      es.close();
      sync.es = null;
      poll();
    };
  }

  const isFinal = (st) => st.status === 'done' || st.status === 'failed';

  async function refreshOnce() {
    try {
      const st = await api('api/syncs/' + encodeURIComponent(sync.id));
      applyState(st);
      if (!isFinal(st)) poll();
    } catch (e) {
      poll();
    }
  }

  function poll() {
    clearTimeout(sync.pollTimer);
    if (sync.finished) return;
    sync.pollTimer = setTimeout(async () => {
      try {
        const st = await api('api/syncs/' + encodeURIComponent(sync.id));
        sync.pollFailures = 0;
        setNotice('hs-sync-notice', null);
        applyState(st);
      } catch (e) {
        sync.pollFailures++;
        if (e.code === 'not_found' || e.code === 'unauthorized' || sync.pollFailures >= 5) {
          setNotice('hs-sync-notice', errorNotice(e, () => {
            sync.pollFailures = 0;
            setNotice('hs-sync-notice', null);
            poll();
          }, 'again'));
          return;
        }
      }
      if (!sync.finished) poll();
    }, sync.pollFailures ? Math.min(POLL_MS * 2 ** sync.pollFailures, 8000) : POLL_MS);
  }

  function applyState(st) {
    if (sync.finished) return;
    sync.state = st;
    /* models the server reports that we did not list (should not happen): show them too */
    for (const m of st.models || []) {
      if (!sync.models.some((x) => x.id === m.id))
        sync.models.push({ id: m.id, name: m.name || 'Model ' + m.id, whenReady: false });
    }
    renderProgress();
    if (isFinal(st)) {
      sync.finished = true;
      clearTimeout(sync.pollTimer);
      if (sync.es) {
        sync.es.close();
        sync.es = null;
      }
      renderSummary();
    }
  }

  function stateOf(m) {
    return ((sync.state && sync.state.models) || []).find((x) => x.id === m.id) || {};
  }

  function progressText(m, s) {
    const total = Number(s.artifacts_total) || 0;
    const done = Number(s.artifacts_done) || 0;
    switch (s.result) {
      case 'synced': return 'Synced' + (total ? ' \u00b7 ' + plural(total, 'file', 'files') : '');
      case 'pending': return 'Waiting for Hover \u00b7 will sync when ready';
      case 'failed_upstream': return s.message || 'Hover could not build this model';
      case 'error': return 'Failed: ' + (s.message || 'an error happened');
    }
    if (m.whenReady && !total) return 'Waiting for Hover\u2026';
    if (sync.state && sync.state.status === 'queued') return 'Queued';
    if (!total) return 'Up next';
    return 'Downloading ' + done + ' of ' + plural(total, 'file', 'files');
  }

  function renderProgress() {
    const ul = $('hs-progress');
    const rows = sync.models.map((m) => {
      const s = stateOf(m);
      const total = Number(s.artifacts_total) || 0;
      const done = Math.min(Number(s.artifacts_done) || 0, total);
      const result = s.result || null;
      const pct = result === 'synced' ? 100 : total ? Math.round((done / total) * 100) : 0;
      const indeterminate = !result && !total;
      const cls = 'hs-prog-row' + (result ? ' is-' + result : '') + (indeterminate ? ' is-indeterminate' : '');
      const barLabel = 'Progress of ' + m.name;
      const bar = h('div', {
        class: 'hs-bar', role: 'progressbar', 'aria-label': barLabel, 'aria-valuemin': 0,
        'aria-valuemax': total || 100,
        'aria-valuenow': indeterminate ? null : result === 'synced' ? (total || 100) : done,
        'aria-valuetext': progressText(m, s),
      }, h('span', { class: 'hs-bar-fill' }));
      bar.firstChild.style.width = (indeterminate ? 0 : pct) + '%'; /* CSSOM: fine under a strict CSP */
      const icon = result === 'synced' ? ICONS.check : result === 'pending' ? ICONS.clock
        : result === 'failed_upstream' || result === 'error' ? ICONS.error : null;
      return h('li', { class: cls, 'data-model-id': m.id, 'data-result': result || '' },
        h('div', { class: 'hs-prog-head' },
          h('span', { class: 'hs-prog-name' }, icon ? svgIcon(icon, 18) : h('span', { class: 'hs-spinner', 'aria-hidden': 'true' }), m.name),
          h('span', { class: 'hs-prog-text' }, progressText(m, s))),
        bar);
    });
    ul.replaceChildren(...rows);
    const st = sync.state || {};
    const settled = rows.filter((r) => r.dataset.result).length;
    $('hs-sync-status').textContent = isFinal(st) ? '' : st.status === 'queued' ? 'Waiting for a free worker\u2026'
      : settled + ' of ' + plural(sync.models.length, 'model', 'models') + ' done';
  }

  /* The stored files of model m: its own records, or the sync's (by model id, or flat when one
   * model was synced). Paths become absolute URLs of the service. */
  function recordsFor(st, m, syncedCount) {
    const abs = (r) => {
      const out = {};
      if (!r || typeof r !== 'object') return out;
      for (const [k, v] of Object.entries(r)) {
        if (typeof v === 'string' && /^(\/|https?:)/.test(v)) out[k] = fileUrl(v);
      }
      return out;
    };
    if (m.records && typeof m.records === 'object') return abs(m.records);
    const r = st.records;
    if (!r || typeof r !== 'object') return {};
    if (Array.isArray(r)) {
      const mine = r.filter((x) => x && x.model_id === m.id);
      const out = {};
      for (const x of mine) if (x.kind && (x.url || x.path)) out[x.kind] = fileUrl(x.url || x.path);
      return out;
    }
    if (r[m.id] && typeof r[m.id] === 'object') return abs(r[m.id]);
    const flat = Object.values(r).every((v) => typeof v === 'string');
    return flat && syncedCount === 1 ? abs(r) : {};
  }

  function flatRecords(st) {
    const r = st && st.records;
    if (!r || typeof r !== 'object' || Array.isArray(r)) return {};
    const out = {};
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === 'string' && /^(\/|https?:)/.test(v)) out[k] = fileUrl(v);
      else if (v && typeof v === 'object') {
        const sub = {};
        for (const [k2, v2] of Object.entries(v)) if (typeof v2 === 'string') sub[k2] = fileUrl(v2);
        out[k] = sub;
      }
    }
    return out;
  }

  function recordLinks(records) {
    const entries = Object.entries(records).filter(([k, v]) => typeof v === 'string' && !/^image/.test(k));
    entries.sort(([a], [b]) => rank(a) - rank(b));
    return entries.map(([k, v]) => h('a', {
      class: 'hs-file', href: v, target: '_blank', rel: 'noopener', 'data-kind': k,
      onclick: (ev) => {
        const sha = /\/files\/([0-9a-f]{64})$/.exec(new URL(v).pathname);
        if (sha) openWithTicket(ev, { purpose: 'file', sha256: sha[1] }, false);
      },
    },
      svgIcon(ICONS.file, 16), RECORD_LABELS[k] || humanize(k),
      h('span', { class: 'hs-visually-hidden' }, ' (opens in a new window)')));
  }
  const rank = (k) => (/pdf/.test(k) ? 0 : /^(json|measurements(\.json)?|summarized)/.test(k) ? 1 : 2);

  function renderSummary() {
    const st = sync.state;
    const job = sync.job;
    const models = sync.models.map((m) => Object.assign({}, m, stateOf(m), { name: stateOf(m).name || m.name }));
    const synced = models.filter((m) => m.result === 'synced');
    const pending = models.filter((m) => m.result === 'pending' || (!m.result && m.whenReady));
    const failed = models.filter((m) => m.result === 'failed_upstream' || m.result === 'error' || (!m.result && !m.whenReady));

    const syncedOut = synced.map((m) => ({
      id: m.id, name: m.name, deliverable: m.deliverable || null,
      records: recordsFor(st, m, synced.length),
    }));
    finishedResult = {
      job: {
        id: job.id, name: job.name || null, address: addressText(job.address) || null,
        customer: job.customer || null, external_identifier: job.external_identifier || null,
      },
      sync_id: st.id || sync.id,
      status: st.status,
      result: st.result || (failed.length ? (synced.length ? 'partial' : 'failed') : 'synced'),
      synced_models: syncedOut,
      pending_models: pending.map((m) => ({ id: m.id, name: m.name, message: m.message || null })),
      failed_models: failed.map((m) => ({
        id: m.id, name: m.name, result: m.result || 'error',
        message: m.message || (m.result === 'failed_upstream' ? 'Hover could not build this model' : null),
      })),
      records: flatRecords(st),
      service: BASE.origin,
    };

    const sec = [];
    if (synced.length) {
      sec.push(h('section', { class: 'hs-sum-group is-synced', 'aria-labelledby': 'hs-sum-synced' },
        h('h3', { class: 'hs-h3', id: 'hs-sum-synced' }, svgIcon(ICONS.check, 18), 'Synced (' + synced.length + ')'),
        h('ul', {}, syncedOut.map((m) => {
          const links = recordLinks(m.records);
          return h('li', { 'data-model-id': m.id },
            h('span', { class: 'hs-sum-name' }, m.name),
            links.length ? h('span', { class: 'hs-files' }, links) : h('span', { class: 'hs-muted' }, 'Stored in your CRM'));
        }))));
    }
    if (pending.length) {
      sec.push(h('section', { class: 'hs-sum-group is-pending', 'aria-labelledby': 'hs-sum-pending' },
        h('h3', { class: 'hs-h3', id: 'hs-sum-pending' }, svgIcon(ICONS.clock, 18), 'Will sync when ready (' + pending.length + ')'),
        h('ul', {}, pending.map((m) => h('li', { 'data-model-id': m.id },
          h('span', { class: 'hs-sum-name' }, m.name),
          h('span', { class: 'hs-muted' }, 'Hover is still working on it. It will sync by itself as soon as it is complete.'))))));
    }
    if (failed.length) {
      sec.push(h('section', { class: 'hs-sum-group is-failed', 'aria-labelledby': 'hs-sum-failed' },
        h('h3', { class: 'hs-h3', id: 'hs-sum-failed' }, svgIcon(ICONS.error, 18), 'Not synced (' + failed.length + ')'),
        h('ul', {}, failed.map((m) => h('li', { 'data-model-id': m.id },
          h('span', { class: 'hs-sum-name' }, m.name),
          h('span', { class: 'hs-muted' }, m.result === 'failed_upstream' ? (m.message || 'Hover could not build this model')
            : 'Error: ' + (m.message || 'the sync did not finish') + '. Try again later.'))))));
    }
    const jobRecords = !synced.some((m) => Object.keys(m.records || {}).length) ? recordLinks(
      Object.fromEntries(Object.entries(finishedResult.records).filter(([, v]) => typeof v === 'string'))) : [];
    if (jobRecords.length) sec.push(h('p', { class: 'hs-files' }, jobRecords));

    const title = !failed.length ? (pending.length && !synced.length ? 'Waiting for Hover' : 'Sync complete')
      : synced.length ? 'Sync finished with problems' : 'Nothing was synced';
    $('hs-sync-title').textContent = title;
    const sum = $('hs-summary');
    sum.replaceChildren(...sec);
    sum.hidden = false;
    $('hs-sync-status').textContent = [
      synced.length ? plural(synced.length, 'model', 'models') + ' synced' : null,
      pending.length ? pending.length + ' waiting for Hover' : null,
      failed.length ? failed.length + ' not synced' : null,
    ].filter(Boolean).join(', ') + '.';
    show('sync');
    $('hs-done').focus();
  }

  /* Sign out: the session ends on the service (DELETE /api/session), on every instance; nothing
   * of this page works after it, so the modal says so and asks its host page to close it. */
  async function signOut() {
    const btn = $('hs-signout');
    btn.disabled = true;
    try {
      await api('api/session', { method: 'DELETE' });
    } catch (e) {
      if (e.status !== 401) {
        btn.disabled = false;
        setNotice('hs-search-notice', errorNotice(e, null));
        return;
      }
    }
    TOKEN = null;
    show('search');
    input.disabled = true;
    $('hs-results').replaceChildren();
    setNotice('hs-search-notice', notice('info', 'Signed out.',
      'Open the import from the CRM again to continue.', null, null));
    post('close', {});
  }

  $('hs-signout').addEventListener('click', signOut);
  $('hs-done').addEventListener('click', finish);
  $('hs-close').addEventListener('click', requestClose);
  $('hs-cancel').addEventListener('click', requestClose);

  /* ---------- dialog behaviour: Escape, focus trap ---------- */

  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !e.defaultPrevented) {
      e.preventDefault();
      requestClose();
    } else if (e.key === 'Tab') {
      trapTab(e);
    }
  });

  const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

  function focusables() {
    return [...$('hs-dialog').querySelectorAll(FOCUSABLE)].filter((el) => !el.closest('[hidden]') && el.getClientRects().length);
  }

  function trapTab(e) {
    const els = focusables();
    if (!els.length) return;
    const first = els[0];
    const last = els[els.length - 1];
    const inside = $('hs-dialog').contains(document.activeElement);
    if (e.shiftKey && (document.activeElement === first || !inside)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
      e.preventDefault();
      first.focus();
    }
  }

  /* The host page focuses the frame when the modal is ready; a frame of another site (its own
   * process) comes in with nothing focused: the search box takes it, as on a first open. */
  window.addEventListener('focus', () => {
    if ((!document.activeElement || document.activeElement === document.body) && view === 'search') input.focus();
  });

  /* Focus that lands outside the dialog (a click on the backdrop area) comes back in. */
  document.addEventListener('focusin', (e) => {
    if (!$('hs-dialog').contains(e.target)) input.focus();
  });

  /* ---------- start ---------- */

  (async () => {
    show('search');
    input.focus();
    post('ready', {});
    sessionReady = awaitSession();
    await sessionReady;
    if (!TOKEN && !CSRF) {
      try {
        CSRF = (await api('api/session')).csrf_token || '';
      } catch (e) { /* the first state-changing call will say what is wrong */ }
    }
    await loadConnections();
    runSearch(false);
  })();
})();
