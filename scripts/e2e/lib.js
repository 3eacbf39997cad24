// What run-tests.js and ui-smoke.js share: a temp home for one run, the workspace with a copy of the
// embedded model, code-server in its own process group, and headless Chromium.
// Paths come from env.sh (sourced by run.sh), so run these scripts through `npm run test:e2e` / `npm run smoke`.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

for (const k of ['E2E_TOOLS', 'NODE24', 'CODE_SERVER']) {
  if (!process.env[k]) throw new Error(`${k} is not set: run through npm run test:e2e / npm run smoke (scripts/e2e/run.sh)`);
}
const REPO = path.resolve(__dirname, '../..');
const { chromium } = require(path.join(process.env.E2E_TOOLS, 'node_modules/playwright-core'));

// code-server runs in a process group of its own, which Ctrl-C does not reach; leaving through
// process.exit runs the exit hook below that kills that group.
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) process.once(sig, () => process.exit(code));

const t0 = Date.now();
const log = (m) => console.error(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);

/** A temp folder for everything one run writes; removed by cleanup() unless KEEP=1. */
function makeTemp() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-e2e-'));
  fs.mkdirSync(path.join(tmp, 'ud/User'), { recursive: true });
  // Offline: anything that would phone home only adds ENOTFOUND noise and delays.
  fs.writeFileSync(path.join(tmp, 'ud/User/settings.json'), JSON.stringify({
    'telemetry.telemetryLevel': 'off', 'extensions.autoCheckUpdates': false, 'extensions.autoUpdate': false,
    'workbench.startupEditor': 'none', 'chat.disableAIFeatures': true, 'workbench.tips.enabled': false,
    // An empty chat sidebar would take a fifth of every screenshot.
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    // The smoke opens more editors than one row of tabs holds; wrapped, every tab stays where a person clicks it.
    'workbench.editor.wrapTabs': true,
  }, null, 2));
  return tmp;
}

/** The workspace the window opens: a copy of the embedded model, so no test can write into models/. */
function makeWorkspace(tmp) {
  const ws = path.join(tmp, 'ws');
  fs.cpSync(path.join(REPO, 'models/stories260K'), path.join(ws, 'stories260K'), { recursive: true });
  return ws;
}

/**
 * Starts code-server on a free port. It runs in its own process group because it forks helpers
 * (file watcher, agent host) that outlive a plain kill of its pid.
 */
async function startCodeServer(tmp, { args = [], env = {} } = {}) {
  const server = spawn(process.env.NODE24, [process.env.CODE_SERVER, '--bind-addr', '127.0.0.1:0', '--auth', 'none',
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
    '--extensions-dir', path.join(tmp, 'exts'), '--user-data-dir', path.join(tmp, 'ud'), ...args], {
    detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    // code-server writes config.yaml, logs and a device id under XDG folders, which default to ~.
    env: { ...process.env, ...env, XDG_CONFIG_HOME: tmp, XDG_DATA_HOME: tmp, XDG_CACHE_HOME: tmp },
  });
  const killGroup = (sig) => { try { process.kill(-server.pid, sig); } catch { /* already gone */ } };
  process.on('exit', () => killGroup('SIGKILL'));
  let out = '';
  const base = await new Promise((resolve, reject) => {
    const onData = (b) => {
      out += b;
      const m = /HTTP server listening on (http:\/\/\S+?)\/?\s/.exec(out);
      if (m) resolve(m[1]);
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (c) => reject(new Error(`code-server exited with ${c}\n${out}`)));
  });
  log(`code-server at ${base}, process group ${server.pid}`);
  const stop = async () => {
    killGroup('SIGTERM');
    await new Promise((r) => { if (server.exitCode !== null) r(); else server.on('exit', r); setTimeout(r, 5000); });
    // Helpers respawned during shutdown would otherwise linger for a few seconds.
    await new Promise((r) => setTimeout(r, 1000));
    killGroup('SIGKILL');
  };
  return { base, stop };
}

/** Workbench URL for a folder on the server's machine, with an optional test payload. */
function workbenchUrl(base, folder, payload) {
  const q = `folder=${encodeURIComponent(folder)}`;
  return `${base}/?${q}${payload ? `&payload=${encodeURIComponent(JSON.stringify(payload))}` : ''}`;
}

async function launchBrowser(tmp) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // Chromium's crash-report folder would otherwise land in ~/.config.
    env: { ...process.env, XDG_CONFIG_HOME: tmp, XDG_CACHE_HOME: tmp },
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  return { browser, page };
}

function cleanup(tmp) {
  if (process.env.KEEP) log(`kept ${tmp}`);
  else fs.rmSync(tmp, { recursive: true, force: true });
}

/** Polls `probe` every 100 ms until it holds; fails after `timeout` ms naming `what`. */
async function until(page, what, probe, timeout) {
  const deadline = Date.now() + timeout;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await page.waitForTimeout(100);
  }
}

/**
 * Right-clicks `target` and walks the context menu through `labels` (a submenu, then its item) by
 * keyboard, which reaches every item (pointer clicks on the menu's last group time out in this
 * workbench). A menu without the first label is closed and asked for again: the Explorer offers
 * PruneLens on a folder only once the extension has listed the workspace's checkpoints.
 * `shot(name)` photographs the open menus.
 */
async function contextMenu(page, target, labels, { timeout, shot }) {
  const deadline = Date.now() + timeout;
  const menus = page.locator('.monaco-menu');
  // The label of the item with keyboard focus in the menu at `level` (an open submenu sits inside its parent item, after its label).
  const focused = async (level) => ((await menus.nth(level).locator('.action-item.focused .action-label').first().textContent({ timeout: 1000 }).catch(() => null)) ?? '').trim();
  for (let level = 0; level < labels.length; level++) {
    const label = labels[level];
    if (level === 0) {
      for (;;) {
        await target.click({ button: 'right' });
        await menus.first().waitFor();
        const own = (await menus.first().locator('.action-item:not(.disabled) .action-label').allTextContents()).map((s) => s.trim());
        if (own.includes(label)) break;
        if (Date.now() > deadline) throw new Error(`no "${label}" in the context menu: ${own.join(' | ')}`);
        await page.keyboard.press('Escape');
        await page.waitForTimeout(1000);
      }
      await page.keyboard.press('Home');
    } else {
      // ArrowRight opened the submenu; on a loaded machine a key can arrive before the menu that should take it, so ask again.
      await until(page, `the ${labels[level - 1]} submenu`, async () => {
        if (await menus.nth(level).isVisible()) return true;
        await page.keyboard.press('ArrowRight');
        await page.waitForTimeout(500);
        return menus.nth(level).isVisible();
      }, timeout);
      const own = (await menus.nth(level).locator('.action-item:not(.disabled) .action-label').allTextContents()).map((s) => s.trim());
      if (!own.includes(label)) throw new Error(`no enabled "${label}" in the ${labels[level - 1]} submenu: ${own.join(' | ')}`);
    }
    // Down the menu until the item has focus, checking after every key rather than counting keys.
    await until(page, `"${label}" focused`, async () => {
      if ((await focused(level)) === label) return true;
      await page.keyboard.press('ArrowDown');
      await page.waitForTimeout(150);
      return (await focused(level)) === label;
    }, timeout);
    if (level === 0) await shot(`menu-${label}`);
    if (level < labels.length - 1) {
      await page.keyboard.press('ArrowRight');
    } else {
      await shot(`menu-${label}`);
      await page.keyboard.press('Enter');
      await menus.first().waitFor({ state: 'detached' });
    }
  }
}

module.exports = { REPO, log, makeTemp, makeWorkspace, startCodeServer, workbenchUrl, launchBrowser, cleanup, contextMenu, until };
