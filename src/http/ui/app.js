// vectord web console: lists indexes, shows one, and runs searches against the same-origin
// JSON API (API.md). Plain DOM, no framework and no build step, so that the binary can embed
// it as is. Every piece of data goes into the page as text (textContent), never as HTML:
// index names, ids and metadata come from users.
'use strict';

(function () {
  const KEY_STORAGE = 'vectord.apiKey';
  const DETAIL_CONCURRENCY = 4;
  const app = document.getElementById('app');
  const healthEl = document.getElementById('health');
  const keyForm = document.getElementById('key-form');
  const keyInput = document.getElementById('api-key');

  // Bumped on every navigation, so that answers for a page the user has left are dropped.
  let generation = 0;
  let errorBox = null;

  // ---- small DOM helpers ----------------------------------------------------------------

  // h('td', {class: 'num', testid: 'x'}, 'text', childNode, ...): strings become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'testid') el.dataset.testid = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function tableWrap(table) {
    // The wrapper scrolls sideways on a phone instead of widening the whole page.
    return h('div', { class: 'table-wrap' }, table);
  }

  function formatBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i++;
    }
    return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
  }

  function formatDistance(d) {
    if (typeof d !== 'number') return String(d);
    return String(Number(d.toPrecision(6)));
  }

  function compactJson(v) {
    try {
      return JSON.stringify(v);
    } catch (_) {
      return String(v);
    }
  }

  function showError(message) {
    if (!errorBox) return;
    errorBox.textContent = message;
    errorBox.hidden = !message;
    // On a phone the box can sit below the fold, under the form that caused it.
    if (message) errorBox.scrollIntoView({ block: 'nearest' });
  }

  // ---- API --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || '';
    } catch (_) {
      return ''; // storage can be disabled (private modes); the console then runs keyless
    }
  }

  // body: a string already holding JSON (the search builds its body by hand, see below).
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'network', `vectord did not answer (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (res.status === 401) {
      keyForm.classList.add('needs-key');
      throw new ApiError(401, 'unauthorized', 'API key required or wrong');
    }
    if (!res.ok) {
      const err = data && data.error;
      const message = err && err.message ? err.message : `HTTP ${res.status} ${res.statusText}`;
      throw new ApiError(res.status, (err && err.code) || 'http_error', message);
    }
    keyForm.classList.remove('needs-key');
    return data;
  }

  const indexPath = (name) => `/vectors/index/${encodeURIComponent(name)}`;

  // ---- header: health and API key ---------------------------------------------------------

  async function refreshHealth() {
    try {
      const hl = await api('GET', '/health');
      const parts = [
        `${hl.status}`,
        `${hl.indexes} index${hl.indexes === 1 ? '' : 'es'}`,
        hl.persistence,
        hl.ready === false ? 'loading' : 'ready',
      ];
      const failed = Array.isArray(hl.failed_indexes) ? hl.failed_indexes : [];
      if (failed.length) parts.push(`${failed.length} failed`);
      healthEl.textContent = parts.join(' · ');
      healthEl.className = 'health ' + (failed.length || hl.ready === false ? 'warn' : 'ok');
      return hl;
    } catch (e) {
      healthEl.textContent = e.status === 401 ? 'API key required' : 'unreachable';
      healthEl.className = 'health bad';
      return null;
    }
  }

  keyInput.value = apiKey();
  keyForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = keyInput.value.trim();
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) {
      /* no storage: nothing to remember */
    }
    route();
  });

  // ---- index list -------------------------------------------------------------------------

  const LIST_COLUMNS = [
    ['name', 'Name'],
    ['count', 'Count', 'num'],
    ['dim', 'Dim', 'num'],
    ['distance', 'Distance'],
    ['tombstones', 'Tombstones', 'num'],
    ['memory', 'Memory', 'num'],
    ['disk', 'On disk', 'num'],
    ['sealed_segments', 'Sealed segments', 'num'],
    ['persistence', 'Persistence'],
    ['last_save_error', 'Last save error'],
  ];

  async function renderList(gen) {
    errorBox = h('div', { class: 'error', role: 'alert', testid: 'error', hidden: true });
    const body = h('div', { testid: 'index-list' });
    const failedBox = h('div', { testid: 'failed-indexes' });
    app.replaceChildren(
      h('div', { class: 'title-row' },
        h('h1', {}, 'Indexes'),
        h('button', { type: 'button', testid: 'refresh', onclick: () => route() }, 'Refresh')),
      errorBox,
      failedBox,
      body,
    );
    body.append(h('p', { class: 'muted' }, 'Loading…'));

    const [health, list] = await Promise.allSettled([refreshHealth(), api('GET', '/vectors/index')]);
    if (gen !== generation) return;

    const hl = health.status === 'fulfilled' ? health.value : null;
    if (hl && Array.isArray(hl.failed_indexes) && hl.failed_indexes.length) {
      failedBox.append(renderFailed(hl.failed_indexes));
    }
    if (list.status === 'rejected') {
      body.replaceChildren();
      showError(list.reason.message);
      return;
    }
    const indexes = (list.value && list.value.indexes) || [];
    if (!indexes.length) {
      body.replaceChildren(h('p', { class: 'muted', testid: 'no-indexes' },
        'No indexes yet. Create one with POST /vectors/index (see the README).'));
      return;
    }

    const rows = new Map();
    const tbody = h('tbody');
    for (const info of indexes) {
      const row = listRow(info);
      rows.set(info.name, row);
      tbody.append(row);
    }
    const table = h('table', { testid: 'index-table' },
      h('thead', {}, h('tr', {}, LIST_COLUMNS.map(([, label, cls]) => h('th', { class: cls }, label)))),
      tbody);
    body.replaceChildren(tableWrap(table));
    fillDetails(gen, indexes.map((i) => i.name), rows);
  }

  function listRow(info) {
    const link = h('a', { href: `#/index/${encodeURIComponent(info.name)}`, testid: `index-link-${info.name}` }, info.name);
    const cells = {
      name: link,
      count: info.count,
      dim: info.dim,
      distance: info.distance,
      tombstones: info.tombstones,
      memory: h('span', { title: `${info.memory_bytes_estimate} bytes (estimate)` }, formatBytes(info.memory_bytes_estimate)),
      disk: info.on_disk
        ? h('span', { title: `${info.disk_bytes} bytes of cache files` }, formatBytes(info.disk_bytes || 0))
        : h('span', { class: 'muted', title: 'vectors in RAM' }, 'in RAM'),
      sealed_segments: info.sealed_segments,
      persistence: info.persistence,
      last_save_error: saveErrorCell(info, false),
    };
    return h('tr', { testid: `index-row-${info.name}` },
      LIST_COLUMNS.map(([key, , cls]) => h('td', { class: cls, 'data-col': key }, cells[key] ?? '–')));
  }

  function saveErrorCell(info, known) {
    if (info.last_save_error) {
      return h('span', { class: 'save-error', testid: 'save-error' }, info.last_save_error);
    }
    if (info.persistence === 'ephemeral') return h('span', { class: 'muted' }, 'not saved (ephemeral)');
    return h('span', { class: 'muted' }, known ? 'none' : '…');
  }

  // The list answer leaves out last_save_error (only GET /vectors/index/{name} asks the
  // persister for it), so each row is completed from its own describe call, a few at a time.
  async function fillDetails(gen, names, rows) {
    const queue = names.slice();
    const worker = async () => {
      while (queue.length && gen === generation) {
        const name = queue.shift();
        let cell = null;
        try {
          const info = await api('GET', indexPath(name));
          cell = saveErrorCell(info, true);
        } catch (e) {
          cell = h('span', { class: 'muted', title: e.message }, '?');
        }
        if (gen !== generation) return;
        const td = rows.get(name)?.querySelector('td[data-col="last_save_error"]');
        if (td) td.replaceChildren(cell);
      }
    };
    await Promise.all(Array.from({ length: DETAIL_CONCURRENCY }, worker));
  }

  function renderFailed(failed) {
    const tbody = h('tbody', {}, failed.map((f) => h('tr', {},
      h('td', {}, f.name ?? '–'),
      h('td', {}, f.key ?? '–'),
      h('td', {}, h('span', { class: 'save-error' }, f.error ?? '–')),
      h('td', {}, f.retrying ? 'yes' : 'no'))));
    return h('section', { class: 'warn-box' },
      h('h2', {}, 'Indexes that failed to load'),
      tableWrap(h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Key'), h('th', {}, 'Error'), h('th', {}, 'Retrying'))),
        tbody)));
  }

  // ---- one index --------------------------------------------------------------------------

  const INFO_FIELDS = [
    ['name', 'Name'],
    ['dim', 'Dimensions'],
    ['distance', 'Distance'],
    ['count', 'Count'],
    ['tombstones', 'Tombstones'],
    ['memory_bytes_estimate', 'Memory (estimate)'],
    ['on_disk', 'Vectors on disk'],
    ['disk_bytes', 'On disk'],
    ['quantization', 'Quantization'],
    ['rescoring', 'Rescoring (search defaults)'],
    ['sealed_segments', 'Sealed segments'],
    ['unsealed_count', 'Unsealed items'],
    ['indexing', 'Indexing now'],
    ['persistence', 'Persistence'],
    ['last_save_error', 'Last save error'],
    ['m', 'm'],
    ['ef_construction', 'ef_construction'],
    ['ef_search', 'ef_search'],
  ];

  async function renderIndex(gen, name) {
    errorBox = h('div', { class: 'error', role: 'alert', testid: 'error', hidden: true });
    const infoBox = h('div', { testid: 'index-info' }, h('p', { class: 'muted' }, 'Loading…'));
    const results = h('div', { testid: 'results' });
    const status = h('p', { class: 'muted', testid: 'search-status', 'aria-live': 'polite' });
    const state = { name, info: null, results, status };
    const form = searchForm(state);
    app.replaceChildren(
      h('p', { class: 'crumb' }, h('a', { href: '#/', testid: 'back' }, '← All indexes')),
      h('div', { class: 'title-row' },
        h('h1', { testid: 'index-name' }, name),
        h('button', { type: 'button', testid: 'refresh', onclick: () => loadInfo(gen, state, infoBox) }, 'Refresh')),
      infoBox,
      h('section', { class: 'search' }, h('h2', {}, 'Search'), form, errorBox, status, results),
    );
    refreshHealth();
    await loadInfo(gen, state, infoBox);
  }

  async function loadInfo(gen, state, infoBox) {
    let info;
    try {
      info = await api('GET', indexPath(state.name));
    } catch (e) {
      if (gen !== generation) return;
      infoBox.replaceChildren();
      showError(e.message);
      return;
    }
    if (gen !== generation) return;
    state.info = info;
    state.form?.setDim(info.dim);
    infoBox.replaceChildren(infoList(info));
  }

  function infoList(info) {
    const dl = h('dl', { class: 'info', testid: 'info' });
    const shown = new Set();
    const add = (key, label, value) => {
      dl.append(h('dt', {}, label), h('dd', { 'data-field': key, testid: `info-${key}` }, value));
    };
    for (const [key, label] of INFO_FIELDS) {
      shown.add(key);
      let v = info[key];
      if (key === 'memory_bytes_estimate' || key === 'disk_bytes') {
        v = v === undefined ? '–' : `${formatBytes(v)} (${v} bytes)`;
      } else if (key === 'on_disk') {
        v = v ? 'yes (sealed segments\' vectors mapped from cache files)' : 'no (in RAM)';
      } else if (key === 'quantization' || key === 'rescoring') {
        v = v ? compactJson(v) : 'none';
      } else if (key === 'last_save_error') {
        v = saveErrorCell(info, true);
      } else if (key === 'indexing') {
        if (v === undefined) continue;
        v = v ? 'yes (sealing or merging segments)' : 'no';
      } else if (v === undefined || v === null) {
        v = '–';
      }
      add(key, label, v);
    }
    // Fields a newer server adds still show, as JSON, without a console change.
    for (const [key, v] of Object.entries(info)) {
      if (shown.has(key)) continue;
      add(key, key, typeof v === 'string' ? v : compactJson(v));
    }
    return dl;
  }

  function searchForm(state) {
    const mode = h('select', { id: 'search-mode', name: 'mode', testid: 'search-mode' },
      h('option', { value: 'id' }, 'by item id'),
      h('option', { value: 'vector' }, 'by vector'));
    const id = h('input', { id: 'search-id', name: 'id', type: 'text', testid: 'search-id', spellcheck: 'false', autocomplete: 'off', placeholder: 'an item id' });
    const vector = h('textarea', { id: 'search-vector', name: 'vector', rows: 4, testid: 'search-vector', spellcheck: 'false', placeholder: '[0.1, 0.2, …]' });
    const k = h('input', { id: 'search-k', name: 'k', type: 'number', value: '10', min: '1', max: '1000', step: '1', inputmode: 'numeric', testid: 'search-k' });
    const ef = h('input', { id: 'search-ef', name: 'ef', type: 'number', min: '1', step: '1', inputmode: 'numeric', testid: 'search-ef', placeholder: 'default' });
    const filter = h('textarea', { id: 'search-filter', name: 'filter', rows: 2, testid: 'search-filter', spellcheck: 'false', placeholder: '{"lang": "en"}' });
    const submit = h('button', { type: 'submit', class: 'primary', testid: 'search-submit' }, 'Search');
    const vectorHint = h('span', { class: 'hint' }, 'a JSON array of numbers');

    const idField = h('div', { class: 'field' }, h('label', { for: 'search-id' }, 'Item id'), id);
    const vectorField = h('div', { class: 'field' },
      h('label', { for: 'search-vector' }, 'Vector ', vectorHint), vector);
    const syncMode = () => {
      idField.hidden = mode.value !== 'id';
      vectorField.hidden = mode.value !== 'vector';
    };
    mode.addEventListener('change', syncMode);
    syncMode();

    // novalidate: the console's own checks give one clear message instead of browser bubbles.
    const form = h('form', { testid: 'search-form', novalidate: true, autocomplete: 'off' },
      h('div', { class: 'field' }, h('label', { for: 'search-mode' }, 'Mode'), mode),
      idField,
      vectorField,
      h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'search-k' }, 'k'), k),
        h('div', { class: 'field' }, h('label', { for: 'search-ef' }, 'ef ', h('span', { class: 'hint' }, 'optional')), ef)),
      h('div', { class: 'field' },
        h('label', { for: 'search-filter' }, 'Filter ', h('span', { class: 'hint' }, 'optional JSON filter: {"lang": "en"}, {"year": {"$gte": 2021}}, {"$or": [...]}')),
        filter),
      h('div', { class: 'actions' }, submit));

    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      runSearch(state, { mode, id, vector, k, ef, filter, submit });
    });

    state.form = {
      setDim(dim) {
        vectorHint.textContent = `a JSON array of ${dim} numbers`;
      },
      searchById(itemId) {
        mode.value = 'id';
        syncMode();
        id.value = itemId;
        form.scrollIntoView({ block: 'start', behavior: 'smooth' });
        runSearch(state, { mode, id, vector, k, ef, filter, submit });
      },
    };
    return form;
  }

  // Checks the form and returns the search body as JSON text, or throws a message.
  function parseOptionalInt(input, label) {
    const s = input.value.trim();
    if (!s) return undefined;
    if (!/^\d+$/.test(s)) throw new Error(`${label} must be a whole number, got "${s}"`);
    return Number(s);
  }

  // Returns the vector's JSON text as typed: the server reads each number straight to the
  // nearest f32, and a round trip through a JS double could round a value twice.
  function checkVectorText(text) {
    const s = text.trim();
    if (!s) throw new Error('Paste a vector: a JSON array of numbers, e.g. [0.1, 0.2, 0.3]');
    let v;
    try {
      v = JSON.parse(s);
    } catch (e) {
      throw new Error(`The vector is not valid JSON (${e.message}); expected an array of numbers like [0.1, 0.2, 0.3]`);
    }
    if (!Array.isArray(v)) throw new Error('The vector must be a JSON array of numbers, like [0.1, 0.2, 0.3]');
    if (!v.length) throw new Error('The vector is empty');
    const bad = v.findIndex((x) => typeof x !== 'number' || !isFinite(x));
    if (bad >= 0) {
      throw new Error(`The vector's value at position ${bad} (${compactJson(v[bad])}) is not a finite number`);
    }
    return s;
  }

  async function runSearch(state, f) {
    const gen = generation;
    showError('');
    state.results.replaceChildren();
    state.status.textContent = '';

    let k, ef, filterText;
    try {
      k = parseOptionalInt(f.k, 'k');
      if (k === undefined) throw new Error('k is required (1–1000)');
      ef = parseOptionalInt(f.ef, 'ef');
      const fs = f.filter.value.trim();
      if (fs) {
        let filter;
        try {
          filter = JSON.parse(fs);
        } catch (e) {
          throw new Error(`The filter is not valid JSON (${e.message}); expected an object like {"lang": "en"}`);
        }
        if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
          throw new Error('The filter must be a JSON object, like {"lang": "en"} or {"year": {"$gte": 2021}}');
        }
        filterText = fs;
      }
    } catch (e) {
      showError(e.message);
      return;
    }

    f.submit.disabled = true;
    try {
      let vectorText;
      let source;
      if (f.mode.value === 'id') {
        const itemId = f.id.value;
        if (!itemId) throw new Error('Enter an item id');
        state.status.textContent = `Fetching item "${itemId}"…`;
        const item = await api('GET', `${indexPath(state.name)}/items/${encodeURIComponent(itemId)}`);
        vectorText = JSON.stringify(item.vector);
        source = `the vector of item "${item.id}"`;
      } else {
        vectorText = checkVectorText(f.vector.value);
        source = 'the pasted vector';
      }
      if (gen !== generation) return;
      // Built as text so the vector goes out exactly as typed (see checkVectorText); fields
      // left empty are left out, since the server refuses unknown or null-typed extras.
      let body = `{"vector":${vectorText},"k":${k}`;
      if (ef !== undefined) body += `,"ef":${ef}`;
      if (filterText !== undefined) body += `,"filter":${filterText}`;
      body += ',"include":["metadata","document"]}';
      state.status.textContent = 'Searching…';
      const started = performance.now();
      const answer = await api('POST', `${indexPath(state.name)}/search`, body);
      const ms = performance.now() - started;
      if (gen !== generation) return;
      const results = (answer && answer.results) || [];
      state.status.textContent =
        `${results.length} result${results.length === 1 ? '' : 's'} for ${source}, k=${k}${ef !== undefined ? `, ef=${ef}` : ''}${filterText ? ', filtered' : ''} (${ms.toFixed(0)} ms)`;
      state.results.replaceChildren(resultsTable(state, results));
    } catch (e) {
      if (gen !== generation) return;
      state.status.textContent = '';
      showError(e.message);
    } finally {
      f.submit.disabled = false;
    }
  }

  // Characters of a document shown in a result row.
  const DOCUMENT_CHARS = 160;

  function cut(text, chars) {
    return text.length > chars ? `${text.slice(0, chars)}…` : text;
  }

  function resultsTable(state, results) {
    if (!results.length) {
      return h('p', { class: 'muted', testid: 'no-results' }, 'No results (nothing live matches).');
    }
    const withDocuments = results.some((r) => typeof r.document === 'string');
    const tbody = h('tbody', {}, results.map((r, i) => h('tr', { testid: 'result-row' },
      h('td', { class: 'num', 'data-col': 'rank' }, i + 1),
      h('td', { 'data-col': 'id' },
        h('button', {
          type: 'button',
          class: 'link',
          title: 'Search by this item',
          testid: 'result-id',
          onclick: () => state.form.searchById(r.id),
        }, r.id)),
      h('td', { class: 'num', 'data-col': 'distance', title: String(r.distance) }, formatDistance(r.distance)),
      h('td', { class: 'meta', 'data-col': 'metadata' }, compactJson(r.metadata ?? {})),
      // The document column only when some result has a document; long ones are cut (the
      // whole text is the cell's tooltip).
      withDocuments ? h('td', { class: 'doc', 'data-col': 'document', title: r.document ?? '' },
        cut(r.document ?? '', DOCUMENT_CHARS)) : null)));
    return tableWrap(h('table', { testid: 'results-table' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'num' }, 'Rank'), h('th', {}, 'Id'), h('th', { class: 'num' }, 'Distance'), h('th', {}, 'Metadata'),
        withDocuments ? h('th', {}, 'Document') : null)),
      tbody));
  }

  // ---- routing ----------------------------------------------------------------------------

  function route() {
    generation++;
    const gen = generation;
    errorBox = null;
    const hash = location.hash.replace(/^#/, '');
    const m = /^\/index\/([^/]+)\/?$/.exec(hash);
    if (m) {
      let name;
      try {
        name = decodeURIComponent(m[1]);
      } catch (_) {
        name = m[1];
      }
      document.title = `${name} · vectord console`;
      renderIndex(gen, name);
    } else {
      document.title = 'vectord console';
      renderList(gen);
    }
  }

  window.addEventListener('hashchange', route);
  route();
})();
