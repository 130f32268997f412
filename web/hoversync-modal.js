/* hoversync-modal.js: the one script a CRM page includes to offer "Import from Hover".
 *
 *   <script src="https://hoversync.example.com/hoversync-modal.js"></script>
 *   HoverSync.open({session, connection, onDone(result), onClose(info)})
 *
 * session: a modal session the CRM back-end minted with POST /api/sessions. The modal is an
 * iframe of SERVICE/modal?origin=<this page's origin>&handoff=message inside a modal <dialog>
 * (the rest of the page is inert while it is open; focus comes back to the opener on close).
 * The session token is never in a URL: when the iframe says it is ready, it gets the token by
 * postMessage addressed to the service origin only, keeps it in memory and sends it as a Bearer
 * header, so the modal needs no cookie (browsers block cookies of a frame of another site).
 * The service origin is the origin of this script's own src. Messages from the iframe are taken
 * only from that origin and that iframe; the iframe posts only to the origin it was given.
 * When the user finishes, onDone(result) runs and a `hoversync:done` CustomEvent (detail: result)
 * is dispatched on window; closing without a result runs onClose and dispatches `hoversync:close`.
 * Everything lives in a shadow root, so the CRM's CSS and this script's do not meet. */
(function () {
  'use strict';

  if (window.HoverSync && window.HoverSync.__loaded) return;

  var script = document.currentScript;
  var SERVICE = (function () {
    var src = (script && script.src) || '';
    try {
      var u = new URL(src, location.href);
      /* the service may live under a path prefix: keep the folder of the script */
      return { origin: u.origin, base: u.href.replace(/[^/]*([?#].*)?$/, '') };
    } catch (e) {
      return null;
    }
  })();

  var READY_TIMEOUT_MS = 15000;
  var current = null; /* the open modal */

  var CSS = [
    ':host { all: initial; }',
    'dialog { box-sizing: border-box; padding: 0; border: 0; border-radius: 14px; background: #fff;',
    '  width: min(920px, calc(100vw - 32px)); height: min(760px, calc(100vh - 32px));',
    '  max-width: none; max-height: none; overflow: hidden; color: #16202a;',
    '  box-shadow: 0 24px 64px rgb(9 20 38 / 35%), 0 2px 8px rgb(9 20 38 / 20%); }',
    'dialog::backdrop { background: rgb(15 23 36 / 58%); }',
    'iframe { display: block; width: 100%; height: 100%; border: 0; background: #fff; }',
    '.fallback { box-sizing: border-box; position: absolute; inset: 0; display: flex; flex-direction: column;',
    '  align-items: center; justify-content: center; gap: 12px; padding: 24px; background: #fff;',
    '  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; text-align: center; }',
    '.fallback[hidden] { display: none; }',
    '.fallback strong { font-size: 1.05rem; }',
    '.fallback p { margin: 0; color: #4a5562; max-width: 34em; }',
    '.fallback div { display: flex; gap: 8px; }',
    '.fallback button { min-height: 40px; padding: 0 16px; border-radius: 8px; font: inherit; font-weight: 600;',
    '  cursor: pointer; border: 1px solid #8c96a3; background: #fff; color: #16202a; }',
    '.fallback button.primary { background: #1a56db; border-color: #1a56db; color: #fff; }',
    '.fallback button:focus-visible { outline: 3px solid #1a56db; outline-offset: 2px; }',
    '.loading { position: absolute; inset: 0; display: grid; place-items: center; background: #fff; pointer-events: none;',
    '  font: 15px system-ui, sans-serif; color: #4a5562; }',
    '.loading[hidden] { display: none; }',
    '@media (max-width: 600px) { dialog { width: 100vw; height: 100vh; height: 100dvh; border-radius: 0; } }',
  ].join('\n');

  function open(opts) {
    opts = opts || {};
    if (!SERVICE) throw new Error('HoverSync: cannot tell the service origin from the script src');
    if (!opts.session || typeof opts.session !== 'string')
      throw new TypeError('HoverSync.open: a session (from POST /api/sessions) is required');
    if (current) {
      current.iframe.focus();
      return current.api;
    }

    var opener = document.activeElement;
    var host = document.createElement('div');
    host.setAttribute('data-hoversync', '');
    var root = host.attachShadow({ mode: 'open' });
    var style = document.createElement('style');
    style.textContent = CSS;
    var dialog = document.createElement('dialog');
    dialog.setAttribute('aria-label', 'Import from Hover');
    var iframe = document.createElement('iframe');
    iframe.title = 'Import from Hover';
    var q = new URLSearchParams();
    if (opts.connection) q.set('connection', opts.connection);
    q.set('origin', location.origin);
    q.set('handoff', 'message');
    iframe.src = SERVICE.base + 'modal?' + q.toString();
    iframe.setAttribute('referrerpolicy', 'no-referrer');
    iframe.setAttribute('allow', 'clipboard-write');

    var loading = document.createElement('div');
    loading.className = 'loading';
    loading.textContent = 'Loading Hover import\u2026';
    var fallback = document.createElement('div');
    fallback.className = 'fallback';
    fallback.hidden = true;
    fallback.setAttribute('role', 'alert');
    var fbTitle = document.createElement('strong');
    fbTitle.textContent = 'The Hover import did not load';
    var fbText = document.createElement('p');
    fbText.textContent = 'hoversync could not be reached. Check your connection and try again.';
    var fbButtons = document.createElement('div');
    var retryBtn = document.createElement('button');
    retryBtn.type = 'button';
    retryBtn.className = 'primary';
    retryBtn.textContent = 'Try again';
    var closeBtn = document.createElement('button');
    closeBtn.type = 'button';
    closeBtn.textContent = 'Close';
    fbButtons.append(retryBtn, closeBtn);
    fallback.append(fbTitle, fbText, fbButtons);

    dialog.append(iframe, loading, fallback);
    root.append(style, dialog);
    document.body.appendChild(host);

    var htmlStyle = document.documentElement.style;
    var oldOverflow = htmlStyle.overflow;
    htmlStyle.overflow = 'hidden';

    var ready = false;
    var readyTimer = 0;
    var state = { closed: false };

    function armReadyTimer() {
      clearTimeout(readyTimer);
      readyTimer = setTimeout(function () {
        if (ready || state.closed) return;
        loading.hidden = true;
        fallback.hidden = false;
        retryBtn.focus();
      }, READY_TIMEOUT_MS);
    }

    function onMessage(ev) {
      if (ev.origin !== SERVICE.origin || ev.source !== iframe.contentWindow) return;
      var d = ev.data;
      if (!d || typeof d !== 'object' || d.source !== 'hoversync') return;
      if (d.type === 'ready') {
        /* the session, to the service's frame only (never into a URL) */
        iframe.contentWindow.postMessage({ source: 'hoversync-host', type: 'session', session: opts.session },
          SERVICE.origin);
        ready = true;
        clearTimeout(readyTimer);
        loading.hidden = true;
        fallback.hidden = true;
        iframe.focus();
      } else if (d.type === 'done') {
        close('done', d.result || null);
      } else if (d.type === 'close') {
        close('close', d.sync_id ? { sync_id: d.sync_id, status: d.status || null } : null);
      }
    }

    function close(reason, payload) {
      if (state.closed) return;
      state.closed = true;
      clearTimeout(readyTimer);
      window.removeEventListener('message', onMessage);
      if (dialog.open) dialog.close();
      host.remove();
      htmlStyle.overflow = oldOverflow;
      current = null;
      if (opener && typeof opener.focus === 'function' && opener.isConnected) {
        try {
          opener.focus({ preventScroll: true });
        } catch (e) { /* nothing to restore */ }
      }
      var info = { reason: reason };
      if (reason === 'done') {
        safeCall(opts.onDone, payload);
        window.dispatchEvent(new CustomEvent('hoversync:done', { detail: payload }));
      } else {
        if (payload) info.sync = payload;
        window.dispatchEvent(new CustomEvent('hoversync:close', { detail: info }));
      }
      safeCall(opts.onClose, info);
    }

    window.addEventListener('message', onMessage);
    /* Escape while the focus is on the host side (before the iframe took it) */
    dialog.addEventListener('cancel', function (ev) {
      ev.preventDefault();
      close('close', null);
    });
    iframe.addEventListener('load', function () {
      if (!ready) iframe.focus();
    });
    retryBtn.addEventListener('click', function () {
      fallback.hidden = true;
      loading.hidden = false;
      ready = false;
      iframe.src = iframe.src;
      iframe.focus();
      armReadyTimer();
    });
    closeBtn.addEventListener('click', function () {
      close('close', null);
    });

    dialog.showModal();
    iframe.focus();
    armReadyTimer();

    var api = {
      close: function () {
        close('close', null);
      },
      get open() {
        return !state.closed;
      },
      iframe: iframe,
    };
    current = { iframe: iframe, api: api };
    return api;
  }

  function safeCall(fn, arg) {
    if (typeof fn !== 'function') return;
    try {
      fn(arg);
    } catch (e) {
      setTimeout(function () {
        throw e;
      });
    }
  }

  window.HoverSync = {
    __loaded: true,
    version: '1',
    origin: SERVICE ? SERVICE.origin : null,
    open: open,
    close: function () {
      if (current) current.api.close();
    },
  };
})();
