// Browser test of vectord's web console (/ui): starts its own ephemeral vectord, fills an
// index through the API, then drives Debian's Chromium through playwright-core and checks
// what a user sees. Plain node script: exit 0 when every step passed. See README.md.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const vectordBin = process.env.VECTORD_BIN
  ? path.resolve(process.env.VECTORD_BIN)
  : path.join(repoRoot, 'target', 'release', 'vectord');
const chromiumBin = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const INDEX = 'docs';
const TRICKY_ID = 'a/b <i>x</i> & "q"'; // a slash for the path encoding, markup for escaping
const ITEMS = [
  { id: 'alpha', vector: [1, 0, 0, 0], metadata: { lang: 'en', n: 1 }, document: '<b>alpha</b> text' },
  { id: 'beta', vector: [0, 1, 0, 0], metadata: { lang: 'fr' } },
  { id: 'gamma', vector: [0, 0, 1, 0], metadata: { lang: 'en' } },
  { id: 'delta', vector: [0.9, 0.1, 0, 0], metadata: { lang: 'de' } },
  { id: TRICKY_ID, vector: [0, 0, 0, 1], metadata: { note: '<script>alert(1)</script>' } },
];

let passed = 0;
let failed = 0;
let vectord = null;
let vectordLog = '';
let context = null;
let userDataDir = null;

class Failure extends Error {}
function assert(cond, message) {
  if (!cond) throw new Failure(message);
}
function assertEq(actual, expected, what) {
  assert(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e instanceof Failure ? e.message : e.stack || e}`);
    throw e;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function stopVectord() {
  if (vectord && vectord.exitCode === null && vectord.signalCode === null) {
    try {
      process.kill(vectord.pid, 'SIGTERM');
    } catch (_) {
      /* already gone */
    }
  }
}

async function startVectord() {
  assert(existsSync(vectordBin), `no vectord binary at ${vectordBin} (set VECTORD_BIN)`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // The environment goes through as is, so VECTORD_UI_DIR (console files from disk) works.
  vectord = spawn(vectordBin, ['--ephemeral', '--config', '/dev/null', '--bind', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk) => {
    vectordLog = (vectordLog + chunk.toString()).slice(-8000);
  };
  vectord.stdout.on('data', keep);
  vectord.stderr.on('data', keep);
  const deadline = Date.now() + 30_000;
  for (;;) {
    assert(vectord.exitCode === null, `vectord exited with ${vectord.exitCode}:\n${vectordLog}`);
    try {
      const res = await fetch(`${base}/ready`);
      if (res.ok) return base;
    } catch (_) {
      /* not listening yet */
    }
    assert(Date.now() < deadline, `vectord not ready within 30 s:\n${vectordLog}`);
    await sleep(100);
  }
}

async function apiCall(base, method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, data: text ? JSON.parse(text) : null };
}

// Text of each cell of the results table, row by row.
async function resultRows(page) {
  return page.$$eval('[data-testid="result-row"]', (rows) => rows.map((r) => ({
    id: r.querySelector('[data-col="id"]').textContent,
    distance: r.querySelector('[data-col="distance"]').textContent,
    metadata: r.querySelector('[data-col="metadata"]').textContent,
    document: r.querySelector('[data-col="document"]')?.textContent ?? null,
  })));
}

// Submits the search form and waits until results or an error show.
async function submitSearch(page) {
  await page.click('[data-testid="search-submit"]');
  await page.waitForSelector('[data-testid="results-table"], [data-testid="no-results"], [data-testid="error"]:not([hidden])');
}

async function searchById(page, id, k) {
  await page.selectOption('[data-testid="search-mode"]', 'id');
  await page.fill('[data-testid="search-id"]', id);
  await page.fill('[data-testid="search-k"]', String(k));
  await submitSearch(page);
}

async function searchByVector(page, text, k, filter = '') {
  await page.selectOption('[data-testid="search-mode"]', 'vector');
  await page.fill('[data-testid="search-vector"]', text);
  await page.fill('[data-testid="search-k"]', String(k));
  await page.fill('[data-testid="search-filter"]', filter);
  await submitSearch(page);
}

async function errorText(page) {
  const visible = await page.isVisible('[data-testid="error"]');
  return visible ? (await page.textContent('[data-testid="error"]')).trim() : null;
}

async function noHorizontalOverflow(page, where) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  assert(scrollWidth <= innerWidth, `${where}: page is ${scrollWidth}px wide in a ${innerWidth}px viewport`);
}

async function main() {
  let base;
  await step('vectord starts and is ready', async () => {
    base = await startVectord();
  });

  let wrongLengthMessage;
  await step('index created and filled through the API', async () => {
    const created = await apiCall(base, 'POST', '/vectors/index', { name: INDEX, dim: 4, distance: 'cosine' });
    assertEq(created.status, 201, 'create status');
    const added = await apiCall(base, 'POST', `/vectors/index/${INDEX}/add`, { items: ITEMS });
    assertEq(added.status, 200, 'add status');
    assertEq(added.data.count, ITEMS.length, 'count after add');
    // The message the console must show for a query of the wrong length, as the server words it.
    const wrong = await apiCall(base, 'POST', `/vectors/index/${INDEX}/search`, { vector: [1, 0, 0], k: 3 });
    assertEq(wrong.status, 400, 'wrong-length search status');
    wrongLengthMessage = wrong.data.error.message;
    assert(wrongLengthMessage, 'server error has a message');
  });

  userDataDir = mkdtempSync(path.join(tmpdir(), 'vectord-ui-chromium-'));
  await step('chromium starts', async () => {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumBin,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
      viewport: { width: 1280, height: 800 },
    });
    context.setDefaultTimeout(10_000);
  });

  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // The browser logs each 4xx answer as an error; the error steps cause some on purpose.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text());
  });
  // Anything the console tries to load from elsewhere would break it offline.
  const foreign = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:')) foreign.push(r.url());
  });

  await step('index list shows the index with its count and details', async () => {
    await page.goto(`${base}/ui`);
    assert(await page.$('[data-testid="api-key"]'),
      'the /ui page is not this console: the binary embeds an older copy (rebuild it, or set VECTORD_UI_DIR=src/http/ui)');
    const row = page.locator(`[data-testid="index-row-${INDEX}"]`);
    await row.waitFor();
    const cell = async (col) => (await row.locator(`td[data-col="${col}"]`).textContent()).trim();
    assertEq(await cell('name'), INDEX, 'name cell');
    assertEq(await cell('count'), String(ITEMS.length), 'count cell');
    assertEq(await cell('dim'), '4', 'dim cell');
    assertEq(await cell('distance'), 'cosine', 'distance cell');
    assertEq(await cell('tombstones'), '0', 'tombstones cell');
    assertEq(await cell('persistence'), 'ephemeral', 'persistence cell');
    assert(/^\d+(\.\d+)? (B|kB|MB|GB)$/.test(await cell('memory')), `memory cell is human-readable: ${await cell('memory')}`);
    assertEq(await cell('disk'), 'in RAM', 'on-disk cell of an index in RAM');
    await page.waitForFunction(() => /ready/.test(document.querySelector('[data-testid="health"]').textContent));
    const health = await page.textContent('[data-testid="health"]');
    assert(/1 index\b/.test(health) && /ephemeral/.test(health), `health line: ${health}`);
  });

  await step('a last save error and failed indexes are shown, highlighted', async () => {
    // An ephemeral vectord never saves: the storage failures come from stand-in answers.
    const describe = `${base}/vectors/index/${INDEX}`;
    const saveError = 'storaged unreachable: connection refused <b>';
    await page.route(describe, async (route) => {
      const res = await route.fetch();
      const info = await res.json();
      await route.fulfill({ response: res, json: { ...info, persistence: 'storaged', last_save_error: saveError } });
    });
    await page.route(`${base}/health`, async (route) => {
      const res = await route.fetch();
      const hl = await res.json();
      await route.fulfill({ response: res, json: { ...hl, failed_indexes: [{ name: 'old', key: '_vectors/old.lhv1', error: 'checksum mismatch', retrying: false }] } });
    });
    await page.click('[data-testid="refresh"]');
    const highlighted = page.locator(`[data-testid="index-row-${INDEX}"] [data-testid="save-error"]`);
    await highlighted.waitFor();
    assertEq(await highlighted.textContent(), saveError, 'save error cell');
    const failedBox = await page.textContent('[data-testid="failed-indexes"]');
    assert(/checksum mismatch/.test(failedBox) && /_vectors\/old\.lhv1/.test(failedBox), `failed indexes box: ${failedBox}`);
    assert(/1 failed/.test(await page.textContent('[data-testid="health"]')), 'health line counts the failed index');
    await page.unroute(describe);
    await page.unroute(`${base}/health`);
    await page.click('[data-testid="refresh"]');
    await page.locator(`[data-testid="index-row-${INDEX}"] td[data-col="last_save_error"]`).getByText('not saved (ephemeral)').waitFor();
  });

  await step('clicking the name opens the index page with its info', async () => {
    await page.click(`[data-testid="index-link-${INDEX}"]`);
    await page.waitForSelector('[data-testid="info-count"]');
    assertEq(new URL(page.url()).hash, `#/index/${INDEX}`, 'hash');
    assertEq(await page.textContent('[data-testid="info-count"]'), String(ITEMS.length), 'info count');
    assertEq(await page.textContent('[data-testid="info-dim"]'), '4', 'info dim');
    for (const f of ['distance', 'm', 'ef_construction', 'ef_search', 'tombstones', 'memory_bytes_estimate', 'on_disk', 'disk_bytes', 'quantization', 'sealed_segments', 'unsealed_count', 'persistence', 'last_save_error']) {
      assert(await page.isVisible(`[data-testid="info-${f}"]`), `info field ${f} shown`);
    }
    assertEq(await page.textContent('[data-testid="info-on_disk"]'), 'no (in RAM)', 'on_disk shown');
    assertEq(await page.textContent('[data-testid="info-quantization"]'), 'none', 'quantization shown');
  });

  await step('search by item id: the item first at distance ~0, k rows', async () => {
    await searchById(page, 'alpha', 3);
    assertEq(await errorText(page), null, 'error box');
    const rows = await resultRows(page);
    assertEq(rows.length, 3, 'result rows');
    assertEq(rows[0].id, 'alpha', 'first result');
    assert(Math.abs(parseFloat(rows[0].distance)) <= 1e-6, `first distance ~0, got ${rows[0].distance}`);
    assertEq(rows[1].id, 'delta', 'second result');
    assertEq(JSON.parse(rows[0].metadata).lang, 'en', 'metadata cell');
    assertEq(rows[0].document, '<b>alpha</b> text', 'document cell, as text');
    assertEq(rows[1].document, '', 'no document: an empty cell');
    const bold = await page.$$eval('[data-testid="results-table"] b', (e) => e.length);
    assertEq(bold, 0, 'no element made from a document');
    const ranks = await page.$$eval('[data-testid="result-row"] [data-col="rank"]', (c) => c.map((x) => x.textContent));
    assertEq(ranks.join(','), '1,2,3', 'ranks');
  });

  await step('an id with a slash and markup is encoded in the path and shown as text', async () => {
    await searchById(page, TRICKY_ID, 2);
    assertEq(await errorText(page), null, 'error box');
    const rows = await resultRows(page);
    assertEq(rows.length, 2, 'result rows');
    assertEq(rows[0].id, TRICKY_ID, 'first result id');
    assert(JSON.parse(rows[0].metadata).note === '<script>alert(1)</script>', 'metadata kept literally');
    const injected = await page.$$eval('[data-testid="results-table"] i, [data-testid="results-table"] script', (e) => e.length);
    assertEq(injected, 0, 'elements created from data');
  });

  await step('clicking a result id searches by that item', async () => {
    await searchById(page, 'alpha', 3);
    await page.click('[data-testid="result-row"]:nth-child(2) [data-testid="result-id"]');
    await page.waitForFunction(() => {
      const first = document.querySelector('[data-testid="result-row"] [data-col="id"]');
      return first && first.textContent === 'delta';
    });
    assertEq(await page.inputValue('[data-testid="search-id"]'), 'delta', 'id field');
    const rows = await resultRows(page);
    assertEq(rows.length, 3, 'result rows');
    assert(Math.abs(parseFloat(rows[0].distance)) <= 1e-6, `first distance ~0, got ${rows[0].distance}`);
  });

  await step('search by pasted vector', async () => {
    await searchByVector(page, '[0, 1, 0, 0]', 10);
    assertEq(await errorText(page), null, 'error box');
    const rows = await resultRows(page);
    assertEq(rows.length, ITEMS.length, 'result rows (k above count)');
    assertEq(rows[0].id, 'beta', 'first result');
    assert(Math.abs(parseFloat(rows[0].distance)) <= 1e-6, `first distance ~0, got ${rows[0].distance}`);
    const d = rows.map((r) => parseFloat(r.distance));
    assert(d.every((x, i) => i === 0 || x >= d[i - 1]), `distances ascending: ${d}`);
  });

  await step('search with a filter', async () => {
    await searchByVector(page, '[1, 0, 0, 0]', 10, '{"lang": "fr"}');
    assertEq(await errorText(page), null, 'error box');
    const rows = await resultRows(page);
    assertEq(rows.map((r) => r.id).join(','), 'beta', 'filtered results');
  });

  await step('a malformed vector or filter gets a clear message before any request', async () => {
    let searches = 0;
    const count = (r) => {
      if (r.url().endsWith('/search')) searches++;
    };
    page.on('request', count);
    await searchByVector(page, '[1, 0,', 3);
    assert(/not valid JSON/.test(await errorText(page)), `error for bad JSON: ${await errorText(page)}`);
    await searchByVector(page, '[1, "x", 0, 0]', 3);
    assert(/position 1/.test(await errorText(page)), `error for a non-number: ${await errorText(page)}`);
    await searchByVector(page, '{"a": 1}', 3);
    assert(/array/.test(await errorText(page)), `error for an object: ${await errorText(page)}`);
    await searchByVector(page, '[1, 0, 0, 0]', 3, '[1]');
    assert(/filter must be a JSON object/.test(await errorText(page)), `error for a bad filter: ${await errorText(page)}`);
    page.off('request', count);
    assertEq(searches, 0, 'search requests sent');
    assertEq(await page.$$eval('[data-testid="result-row"]', (r) => r.length), 0, 'stale results cleared');
  });

  await step("a vector of the wrong length shows the server's message", async () => {
    await searchByVector(page, '[1, 0, 0]', 3);
    assertEq(await errorText(page), wrongLengthMessage, 'error box');
    assertEq(await page.$$eval('[data-testid="result-row"]', (r) => r.length), 0, 'result rows');
  });

  await step("an unknown item id shows the server's message", async () => {
    await searchById(page, 'no-such-item', 3);
    const msg = await errorText(page);
    assert(msg && /no-such-item/.test(msg), `error box: ${msg}`);
  });

  await step('reload keeps the index view', async () => {
    await page.reload();
    await page.waitForSelector('[data-testid="info-count"]');
    assertEq(await page.textContent('[data-testid="index-name"]'), INDEX, 'index name');
  });

  await step('API key: sent as a bearer token, and a 401 says so', async () => {
    const seen = [];
    const watch = (r) => {
      if (new URL(r.url()).pathname.startsWith('/vectors/')) seen.push(r.headers().authorization);
    };
    await page.fill('[data-testid="api-key"]', 's3cret');
    page.on('request', watch);
    await page.click('[data-testid="api-key-save"]');
    await page.waitForSelector('[data-testid="info-count"]');
    await searchById(page, 'alpha', 2);
    page.off('request', watch);
    assert(seen.length >= 3, `requests seen: ${seen.length}`);
    assert(seen.every((h) => h === 'Bearer s3cret'), `authorization headers: ${JSON.stringify(seen)}`);
    // vectord does not check keys yet: the 401 comes from a stand-in answer.
    await page.route('**/vectors/index/*/search', (route) => route.fulfill({
      status: 401,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'unauthorized', message: 'missing or wrong API key' } }),
    }));
    await searchById(page, 'alpha', 2);
    await page.unroute('**/vectors/index/*/search');
    assertEq(await errorText(page), 'API key required or wrong', 'error box');
    // Clearing the key stops sending it.
    await page.fill('[data-testid="api-key"]', '');
    await page.click('[data-testid="api-key-save"]');
    await page.waitForSelector('[data-testid="info-count"]');
    const after = [];
    const watch2 = (r) => after.push(r.headers().authorization);
    page.on('request', watch2);
    await searchById(page, 'alpha', 2);
    page.off('request', watch2);
    assert(after.length > 0 && after.every((h) => h === undefined), `headers after clearing: ${JSON.stringify(after)}`);
  });

  await step('phone viewport (390x844): no horizontal overflow', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/ui#/`);
    await page.waitForSelector(`[data-testid="index-row-${INDEX}"]`);
    await noHorizontalOverflow(page, 'index list');
    await page.goto(`${base}/ui#/index/${INDEX}`);
    await page.waitForSelector('[data-testid="info-count"]');
    await searchById(page, TRICKY_ID, 5);
    assertEq((await resultRows(page)).length, 5, 'result rows');
    await noHorizontalOverflow(page, 'index page with results');
    const width = (sel) => page.$eval(sel, (e) => e.getBoundingClientRect().width);
    const idWidth = await width('[data-testid="search-id"]');
    assert(idWidth >= 300, `id input spans the phone's width: ${idWidth}px`);
    await page.selectOption('[data-testid="search-mode"]', 'vector');
    const vectorWidth = await width('[data-testid="search-vector"]');
    assert(vectorWidth >= 300, `vector textarea spans the phone's width: ${vectorWidth}px`);
    await noHorizontalOverflow(page, 'index page in vector mode');
    if (process.env.UI_SCREENSHOTS) await page.screenshot({ path: path.join(process.env.UI_SCREENSHOTS, 'phone-index.png'), fullPage: true });
  });

  await step('no script errors and nothing loaded from elsewhere', async () => {
    assertEq(pageErrors.length, 0, `page errors ${JSON.stringify(pageErrors)}`);
    assertEq(foreign.length, 0, `foreign requests ${JSON.stringify(foreign)}`);
  });
}

let exitCode = 1;
const onSignal = () => {
  stopVectord();
  process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('exit', stopVectord);
try {
  await main();
  exitCode = failed === 0 ? 0 : 1;
} catch (e) {
  if (vectordLog) console.log(`vectord log (tail):\n${vectordLog.slice(-2000)}`);
  exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  stopVectord();
  if (vectord) await new Promise((r) => (vectord.exitCode !== null || vectord.signalCode !== null ? r() : vectord.once('exit', r)));
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
}
console.log(`ui: ${passed} passed, ${failed} failed`);
process.exit(exitCode);
