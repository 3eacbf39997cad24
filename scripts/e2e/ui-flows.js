// The extension used as a person uses it: code-server with this checkout as the extension under
// development, headless Chromium, and every action a click, a key or typed text. No command is called
// from code. Each flow waits on what the window shows (menus, quick input titles, notifications) and
// checks what was written to disk against the CLI run with the same settings. The workbench shows no
// notification toasts while its smoke-test driver is on (which it needs to load the extension from the
// checkout), so notifications are read where a person also finds them: the Notifications Center,
// kept open beside the Explorer.
// node ui-flows.js [SCREENSHOT_DIR]   (default out/e2e/ui-flows); env KEEP=1 keeps the temp folder.
// Run through `npm run test:e2e` or `bash scripts/e2e/run.sh flows`. Exit status: 0 every flow passed, 1 not.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { REPO, log, makeTemp, makeWorkspace, startCodeServer, workbenchUrl, launchBrowser, cleanup, contextMenu, until } = require('./lib');

// Small settings keep each run to seconds on a loaded 2-core machine: 16 calibration windows of 128
// tokens from the first 60,000 characters of the bundled calibration text, perplexity at seqlen 128 on
// the first 20,000 characters of the bundled evaluation text (81 windows).
const SETTINGS = { nsamples: 16, seqlen: 128, calibrationText: 'texts/calibration-small.txt', evaluationText: 'texts/eval-small.txt' };
// Generous bounds for work that takes seconds on a quiet machine; every wait ends as soon as the UI shows the result.
const WORK_MS = 300_000;
const UI_MS = 120_000;

function writeTexts(folder) {
  const texts = path.join(folder, 'texts');
  fs.mkdirSync(texts, { recursive: true });
  const head = (file, chars) => fs.readFileSync(path.join(REPO, 'data/tinystories', file), 'utf8').slice(0, chars);
  fs.writeFileSync(path.join(texts, 'calibration-small.txt'), head('calibration.txt', 60_000));
  fs.writeFileSync(path.join(texts, 'eval-small.txt'), head('eval.txt', 20_000));
  fs.mkdirSync(path.join(folder, '.vscode'), { recursive: true });
  const settings = Object.fromEntries(Object.entries(SETTINGS).map(([k, v]) => [`prunelens.${k}`, v]));
  fs.writeFileSync(path.join(folder, '.vscode/settings.json'), JSON.stringify(settings, null, 2));
}

/** The CLI on the same model and texts: the figures the extension's runs must reproduce. */
function cli(folder, args) {
  const r = spawnSync(process.env.NODE24, [path.join(REPO, 'dist/cli.js'), ...args, '--json'], { cwd: folder, encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
  if (r.status !== 0) throw new Error(`prunelens ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout);
}

const lineOf = (text, pattern) => text.split('\n').find((l) => pattern.test(l)) ?? text;

function assert(condition, what) {
  if (!condition) throw new Error(what);
}

function findFiles(dir, pattern) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? findFiles(path.join(dir, e.name), pattern) : pattern.test(e.name) ? [path.join(dir, e.name)] : []));
}

const partials = (folder) => fs.readdirSync(folder).filter((n) => /\.(partial|previous)-\d+$/.test(n));

const flows = {
  async 'evaluate-from-safetensors'(ui) {
    const ref = ui.reference.eval;
    await ui.explorerItem('stories260K').click();
    await ui.menu(ui.explorerItem('model.safetensors'), ['PruneLens', 'Evaluate Perplexity']);
    const toast = await ui.toast(/Perplexity of stories260K: \d/, WORK_MS);
    const m = /Perplexity of stories260K: (\d+\.\d+) \((\d+) windows of (\d+) tokens\)/.exec(toast);
    assert(m, `unexpected message: ${toast}`);
    await ui.shot('evaluate-toast');
    assert(m[1] === ref.ppl.toFixed(3) && +m[2] === ref.windows, `extension: ${m[0]}; CLI: ppl ${ref.ppl} over ${ref.windows} windows`);
    console.log(`PASS Evaluate Perplexity on model.safetensors: ${m[1]} over ${m[2]} windows of ${m[3]} (CLI ${ref.ppl.toFixed(6)})`);
    await ui.closeToasts();
  },

  async 'explorer-prune-wanda-50'(ui) {
    const ref = ui.reference.prune;
    await ui.menu(ui.explorerItem('stories260K'), ['PruneLens', 'Prune…']);
    await ui.shot('flow-1-method');
    await ui.quickPick('(1/6)', 'wanda');
    await ui.quickPick('(2/6)', '50%');
    // Back from the allocation step returns to the target, as a person checking their answer would.
    await ui.waitTitle('(3/6)');
    await ui.shot('flow-3-allocation');
    await ui.page.locator('.quick-input-widget').getByRole('button', { name: 'Back' }).click();
    await ui.quickPick('(2/6)', '50%');
    await ui.quickPick('(3/6)', 'uniform');
    await ui.quickPick('(4/6)', null); // calibration: the settings' file, preselected
    await ui.quickPick('(5/6)', null); // evaluation: likewise
    await ui.waitTitle('(6/6)');
    await ui.shot('flow-6-output');
    await ui.page.keyboard.press('Enter');
    await ui.toast(/pruning stories260K/, UI_MS);
    await ui.shot('prune-progress');
    const done = await ui.toast(/stories260K pruned with/, WORK_MS);
    await ui.shot('prune-done');
    const record = JSON.parse(fs.readFileSync(path.join(ui.folder, 'stories260K-wanda-50', 'prunelens.json'), 'utf8'));
    assert(record.method === 'wanda' && record.sparsity === 0.5 && record.measured.sparsity === 0.5, `record: ${record.method} ${record.sparsity} measured ${record.measured.sparsity}`);
    assert(record.calibration.nsamples === 16 && record.calibration.seqlen === 128 && record.evaluation.windows === ref.eval.windows, 'the settings reached the run');
    // Same engine, same inputs, same thread count: the same arithmetic, so the figures agree to rounding.
    const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.abs(b);
    assert(close(record.perplexity.pruned, ref.ppl) && close(record.perplexity.dense, ref.ppl_dense),
      `perplexity ${record.perplexity.dense} -> ${record.perplexity.pruned}; CLI ${ref.ppl_dense} -> ${ref.ppl}`);
    assert(partials(ui.folder).length === 0, 'no working folders left');
    console.log(`PASS Explorer → PruneLens → Prune… → wanda, 50%, uniform: ${lineOf(done, /pruned with/)}; prunelens.json perplexity ${record.perplexity.pruned} (CLI ${ref.ppl})`);
    await ui.closeToasts();
  },

  async 'palette-prune-structured'(ui) {
    await ui.page.keyboard.press('F1');
    await ui.paletteOpen();
    await ui.page.keyboard.type('PruneLens: Prune');
    await ui.expectRow('PruneLens: Prune…');
    await ui.page.keyboard.press('Enter');
    // The model: the workspace's checkpoint is offered first.
    await ui.waitTitle('PruneLens: Prune');
    await ui.expectRow('stories260K');
    await ui.page.keyboard.press('Enter');
    await ui.quickPick('(1/6)', 'structured');
    await ui.quickPick('(2/6)', 'layers');
    await ui.quickPick('(3/6)', '20%');
    await ui.quickPick('(4/6)', null);
    await ui.quickPick('(5/6)', null);
    await ui.waitTitle('(6/6)');
    await ui.page.keyboard.press('Enter');
    const done = await ui.toast(/removed from stories260K/, WORK_MS);
    await ui.shot('structured-done');
    const out = path.join(ui.folder, 'stories260K-layers-20');
    const record = JSON.parse(fs.readFileSync(path.join(out, 'prunelens.json'), 'utf8'));
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    // One block of the 5-block model is 17.5% of its parameters, so 20% takes two (README, Structured pruning).
    assert(record.kind === 'structured' && record.removed.layers.length === 2 && config.num_hidden_layers === 3,
      `removed ${JSON.stringify(record.removed.layers)}, ${config.num_hidden_layers} layers written`);
    console.log(`PASS palette → PruneLens: Prune… → structured, layers, 20%: ${lineOf(done, /removed from/)}; blocks ${record.removed.layers} removed, config.json has 3 layers`);
    await ui.closeToasts();
  },

  async 'cancel-leaves-nothing'(ui) {
    await ui.menu(ui.explorerItem('model.safetensors'), ['PruneLens', 'Prune…']);
    await ui.quickPick('(1/6)', 'magnitude');
    await ui.quickPick('(2/5)', '60%');
    await ui.quickPick('(3/5)', 'uniform');
    // The whole bundled evaluation text: long enough to cancel in the middle of the dense evaluation.
    await ui.quickPick('(4/5)', 'Bundled');
    await ui.waitTitle('(5/5)');
    await ui.page.keyboard.press('Enter');
    await ui.showNotifications();
    const progress = ui.notification('pruning stories260K');
    await progress.first().waitFor({ timeout: UI_MS });
    // The output is being written (the engine creates it before evaluating); a person clicks Cancel now.
    await ui.until('the partial output folder', () => partials(ui.folder).length > 0, WORK_MS);
    await ui.shot('cancel-before');
    const clicked = Date.now();
    await progress.getByRole('button', { name: 'Cancel' }).first().click();
    await progress.first().waitFor({ state: 'detached', timeout: UI_MS });
    await ui.until('the partial folder removed', () => partials(ui.folder).length === 0, UI_MS);
    const seconds = (Date.now() - clicked) / 1000;
    await ui.shot('cancel-after');
    assert(!fs.existsSync(path.join(ui.folder, 'stories260K-magnitude-60')), 'no output after a cancel');
    console.log(`PASS Cancel in the progress notification: notification gone and no partial folder ${seconds.toFixed(1)} s after the click`);
  },
};

async function main() {
  const shots = path.resolve(process.argv[2] || path.join(REPO, 'out/e2e/ui-flows'));
  fs.rmSync(shots, { recursive: true, force: true });
  fs.mkdirSync(shots, { recursive: true });
  const tmp = makeTemp();
  let server;
  let browser;
  const consoleLines = [];
  const started = Date.now();
  try {
    const folder = makeWorkspace(tmp);
    writeTexts(folder);
    const model = path.join(folder, 'stories260K');
    const common = ['--seqlen', '128', '--eval', SETTINGS.evaluationText];
    let t = Date.now();
    const reference = {
      eval: cli(folder, ['eval', model, '--text', SETTINGS.evaluationText, '--seqlen', '128']),
      prune: cli(folder, ['prune', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', SETTINGS.calibrationText, '--nsamples', '16', ...common, '--out', path.join(tmp, 'cli-wanda-50')]),
    };
    log(`CLI reference in ${((Date.now() - t) / 1000).toFixed(1)} s: eval ppl ${reference.eval.ppl}, wanda 50% ppl ${reference.prune.ppl_dense} -> ${reference.prune.ppl}`);

    // A built workbench honours the extensionDevelopmentPath payload only with the smoke-test driver on.
    server = await startCodeServer(tmp, { args: ['--vscode-option', 'enable-smoke-test-driver'] });
    const remote = (p) => `vscode-remote://${new URL(server.base).host}${p}`;
    let page;
    ({ browser, page } = await launchBrowser(tmp));
    const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1)}s ${ui.flow ?? 'startup'}]`;
    page.on('console', (m) => consoleLines.push(`${stamp()} ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`${stamp()} pageerror: ${e.message}`));
    // Clicks and key presses wait for the element; on a loaded machine that can take far longer than Playwright's 30 s default.
    page.setDefaultTimeout(UI_MS);
    let failures = 0;
    const ui = {
      page,
      folder,
      reference,
      explorerItem: (name) => page.locator('.explorer-folders-view').getByRole('treeitem', { name, exact: true }),
      async shot(name) {
        // Notifications and quick inputs animate in; a shot taken at once catches them half drawn.
        await page.waitForTimeout(400);
        await page.screenshot({ path: path.join(shots, `${ui.flow}--${name}.png`) });
      },
      until: (what, probe, timeout) => until(page, what, probe, timeout),
      /** Right-clicks `target` and walks its context menu through `labels` (lib.js, contextMenu). */
      menu: (target, labels) => contextMenu(page, target, labels, { timeout: WORK_MS, shot: (name) => ui.shot(name) }),
      /** The command palette is open and takes typing (its box holds the ">" prefix): keys must never land in an editor. */
      async paletteOpen() {
        const box = page.locator('.quick-input-widget .quick-input-box input');
        await ui.until('the command palette', async () => (await box.isVisible()) && (await box.inputValue()) === '>', UI_MS);
      },
      async waitTitle(text) {
        await page.locator('.quick-input-widget .quick-input-title', { hasText: text }).waitFor({ state: 'visible', timeout: UI_MS });
      },
      async expectRow(text) {
        await page.locator('.quick-input-widget .monaco-list-row', { hasText: text }).first().waitFor({ state: 'visible', timeout: UI_MS });
      },
      /** Waits for the step whose title holds `title`, types `text` (null: keep the preselected item) and presses Enter. */
      async quickPick(title, text) {
        await ui.waitTitle(title);
        if (text !== null) {
          await page.keyboard.type(text);
          // The list filters as one types; Enter must not beat the filter to the first row.
          await page.locator('.quick-input-widget .monaco-list-row.focused', { hasText: text }).first().waitFor({ state: 'visible', timeout: UI_MS });
        }
        const titleBox = page.locator('.quick-input-widget .quick-input-title');
        const before = await titleBox.innerText();
        await page.keyboard.press('Enter');
        // Done when this step is gone: the next step has another title (several share words, so compare
        // the whole title), or the quick input closed.
        await ui.until(`the step after "${before}"`, async () => !(await titleBox.isVisible()) || (await titleBox.innerText()) !== before, UI_MS);
      },
      async command(name) {
        await page.keyboard.press('F1');
        await ui.paletteOpen();
        await page.keyboard.type(name);
        await ui.expectRow(name);
        await page.keyboard.press('Enter');
      },
      async showNotifications() {
        if (await page.locator('.notifications-center.visible').count()) return;
        // The bell in the status bar: no typing, so nothing can land in an editor a finished run has just opened.
        const bell = page.locator('[id="status.notifications"]');
        if (await bell.count()) await bell.first().click();
        else await ui.command('Notifications: Show Notifications');
        await page.locator('.notifications-center.visible').waitFor({ timeout: UI_MS });
      },
      notification: (text) => page.locator('.notifications-center .notification-list-item', { hasText: text }),
      /** The text of the first notification matching `pattern`; fails at once on a PruneLens error notification. */
      async toast(pattern, timeout) {
        const deadline = Date.now() + timeout;
        for (;;) {
          await ui.showNotifications();
          const texts = await page.locator('.notifications-center .notification-list-item').allInnerTexts();
          const hit = texts.find((t) => pattern.test(t));
          if (hit) return hit;
          const error = await page.locator('.notifications-center .notification-list-item:has(.codicon-error)').allInnerTexts();
          if (error.length) throw new Error(`error notification: ${error[0]}`);
          if (Date.now() > deadline) throw new Error(`no notification matching ${pattern} within ${timeout / 1000} s; showing: ${texts.join(' || ')}`);
          await page.waitForTimeout(200);
        }
      },
      async closeToasts() {
        // The center's "Clear All Notifications": the next flow then reads only its own. A message that
        // arrives just after (a finished run opens its loss diff and reports again) is cleared by asking again.
        // Visible ones only: the center closes once it is empty, and a closed center's list is not what a person sees.
        const items = page.locator('.notifications-center .notification-list-item').filter({ visible: true });
        await ui.until('the notifications cleared', async () => {
          if ((await items.count()) === 0) return true;
          await ui.command('Notifications: Clear All Notifications');
          await page.waitForTimeout(300);
          return (await items.count()) === 0;
        }, UI_MS);
      },
    };
    await page.goto(workbenchUrl(server.base, folder, [
      ['extensionDevelopmentPath', remote(REPO)],
      ['extensionEnvironment', JSON.stringify({ ORT_DISABLE_TELEMETRY: '1' })],
    ]), { timeout: WORK_MS });
    await ui.explorerItem('stories260K').waitFor({ timeout: WORK_MS });
    log('workbench shows the Explorer');
    await ui.showNotifications();
    const only = process.env.FLOWS ? new RegExp(process.env.FLOWS) : undefined;
    for (const [name, flow] of Object.entries(flows)) {
      if (only && !only.test(name)) continue;
      ui.flow = name;
      t = Date.now();
      try {
        await flow(ui);
        await ui.shot('end');
      } catch (e) {
        failures++;
        console.log(`FAIL ${name}: ${e.message.split('\n').slice(0, 3).join(' ')}`);
        await page.screenshot({ path: path.join(shots, `${name}--FAILED.png`) }).catch(() => {});
        // Whatever the failure left open (a submenu, its menu, a quick input) must not swallow the next flow's keys.
        for (let i = 0; i < 3; i++) await page.keyboard.press('Escape').catch(() => {});
      }
      log(`flow ${name} done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    // The workbench logs this when the extension host's thread stops answering for a while.
    const unresponsive = consoleLines.filter((l) => /Extension host .* is unresponsive/.test(l));
    if (unresponsive.length) {
      failures++;
      console.log(`FAIL the extension host was reported unresponsive:\n${unresponsive.join('\n')}`);
    } else {
      console.log('PASS no "Extension host unresponsive" in the workbench log');
    }
    console.log(`screenshots and the workbench console in ${shots}`);
    console.log(failures ? `UI FLOWS FAILED (${failures})` : 'UI FLOWS OK');
    return failures ? 1 : 0;
  } finally {
    fs.writeFileSync(path.join(shots, 'workbench-console.log'), `${consoleLines.join('\n')}\n`);
    // The extension's own log and its host's, beside the screenshots, for whoever reads a failure.
    for (const file of findFiles(path.join(tmp, 'ud/logs'), /^(PruneLens|remoteexthost)\.log$/)) fs.copyFileSync(file, path.join(shots, path.basename(file)));
    await browser?.close().catch(() => {});
    await server?.stop();
    cleanup(tmp);
  }
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(3); });
