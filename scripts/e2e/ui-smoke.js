// UI smoke test: packages the extension with vsce, installs the VSIX into a fresh code-server, opens the
// workbench on a copy of the embedded model and drives it as a person would, one screenshot per step.
// node ui-smoke.js [SCREENSHOT_DIR]   (default out/e2e/screenshots); env KEEP=1 keeps the temp folder.
// Add a step to `steps`: it gets the `ui` helpers below and is photographed when it returns.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { REPO, log, makeTemp, makeWorkspace, startCodeServer, workbenchUrl, launchBrowser, cleanup } = require('./lib');

const steps = {
  '01-explorer': async (ui) => {
    await ui.treeItem('stories260K').click();
    await ui.expect(ui.treeItem('config.json'), 'the model folder expands in the Explorer');
  },
  '02-model-info-output': async (ui) => {
    await ui.contextMenu(ui.treeItem('config.json'), 'Show Model Info');
    await ui.expect(ui.page.locator('.notifications-toasts', { hasText: 'LlamaForCausalLM: 5 layers' }), 'the summary notification');
    // Tall enough for the whole JSON summary, which the channel otherwise scrolls past.
    await ui.page.getByRole('button', { name: 'Maximize Panel', exact: true }).click();
    await ui.expect(ui.page.locator('.part.panel .view-lines', { hasText: '"architecture": "LlamaForCausalLM"' }), 'the PruneLens output channel shows the summary');
  },
  '03-model-tree': async (ui) => {
    // Put the panel away so the side bar and editors get the room back.
    // The panel is still maximised from the step before; closing it gives the side bar its room back.
    await ui.page.keyboard.press('Escape');
    await ui.page.keyboard.press('Control+J');
    await ui.contextMenu(ui.treeItem('stories260K'), 'Open in Model View');
    const row = (label) => ui.page.locator('.monaco-list-row', { hasText: label }).first();
    // A click can land while the tree re-renders and only select the row; the keyboard then expands it.
    const expand = async (label) => {
      await row(label).click();
      if ((await row(label).getAttribute('aria-expanded')) === 'false') await ui.page.keyboard.press('ArrowRight');
    };
    for (const label of ['Layer 3', 'Attention', 'Heads', 'KV group 1']) await expand(label);
    await ui.expect(row('Head 3.3'), 'the Model view shows layer 3 with its KV groups and heads');
  },
  '04-allocation-panel': async (ui) => {
    // Small calibration keeps the panel's three plans to seconds.
    fs.mkdirSync(path.join(ui.folder, '.vscode'), { recursive: true });
    fs.writeFileSync(path.join(ui.folder, '.vscode', 'settings.json'), JSON.stringify({ 'prunelens.nsamples': 8, 'prunelens.seqlen': 64 }));
    await ui.page.getByRole('tab', { name: /Explorer/ }).first().click();
    await ui.page.waitForTimeout(2000);
    await ui.contextMenu(ui.treeItem('stories260K'), 'Open Sparsity Allocation Panel');
    await ui.expect(ui.webview().getByText('Plans ready.'), 'the allocation panel computed its plans', 180_000);
  },
  '05-inline-diff': async (ui) => {
    await ui.webview().getByRole('button', { name: 'Apply' }).first().click();
    await ui.expect(ui.page.locator('.statusbar-item', { hasText: 'PPL' }), 'the status bar shows dense and pruned perplexity', 180_000);
    await ui.page.waitForTimeout(1500);
  },
};

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${path.basename(args[0])} failed (${r.status}):\n${r.stdout}${r.stderr}`);
}

async function main() {
  const shots = path.resolve(process.argv[2] || path.join(REPO, 'out/e2e/screenshots'));
  fs.rmSync(shots, { recursive: true, force: true });
  fs.mkdirSync(shots, { recursive: true });
  const tmp = makeTemp();
  let server;
  let browser;
  try {
    const vsix = path.join(tmp, 'prunelens.vsix');
    // The repo has no LICENSE file or repository URL; vsce would stop and ask about both.
    run(process.env.NODE24, [path.join(process.env.E2E_TOOLS, 'node_modules/@vscode/vsce/vsce'), 'package',
      '--allow-missing-repository', '--skip-license', '-o', vsix]);
    log(`packaged ${(fs.statSync(vsix).size / 2 ** 20).toFixed(1)} MiB VSIX`);
    run(process.env.NODE24, [process.env.CODE_SERVER, '--extensions-dir', path.join(tmp, 'exts'),
      '--user-data-dir', path.join(tmp, 'ud'), '--install-extension', vsix], { XDG_CONFIG_HOME: tmp, XDG_DATA_HOME: tmp, XDG_CACHE_HOME: tmp });
    log('installed the VSIX');
    const folder = makeWorkspace(tmp);
    // Without a test payload the extension host takes its environment from the server's.
    server = await startCodeServer(tmp, { env: { ORT_DISABLE_TELEMETRY: '1' } });
    let page;
    ({ browser, page } = await launchBrowser(tmp));
    page.on('pageerror', (e) => log(`page error: ${e.message}`));

    let failures = 0;
    const ui = {
      page,
      folder,
      webview: () => page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame'),
      treeItem: (name) => page.getByRole('treeitem', { name, exact: true }),
      async expect(locator, what, timeout = 30_000) {
        await locator.first().waitFor({ timeout });
        console.log(`PASS ${what}`);
      },
      async contextMenu(target, item) {
        await target.click({ button: 'right' });
        // Pointer clicks on the menu's last group time out here; the keyboard reaches every item.
        const items = page.locator('.monaco-menu .action-item:not(.disabled) .action-label');
        await items.first().waitFor();
        const labels = (await items.allTextContents()).map((t) => t.trim());
        const index = labels.indexOf(item);
        if (index < 0) throw new Error(`no "${item}" in the context menu: ${labels.join(' | ')}`);
        await page.keyboard.press('Home');
        for (let i = 0; i < index; i++) await page.keyboard.press('ArrowDown');
        await page.keyboard.press('Enter');
      },
    };
    await page.goto(workbenchUrl(server.base, folder));
    await ui.expect(page.locator('.explorer-folders-view'), 'the workbench shows the Explorer', 60_000);
    for (const [name, step] of Object.entries(steps)) {
      try {
        await step(ui);
        // Notifications and panels animate in; a shot taken at once catches them half drawn.
        await page.waitForTimeout(700);
        await page.screenshot({ path: path.join(shots, `${name}.png`) });
      } catch (e) {
        failures++;
        console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
        await page.screenshot({ path: path.join(shots, `${name}-FAILED.png`) });
      }
      log(`step ${name} done`);
    }
    console.log(`screenshots in ${shots}`);
    console.log(failures ? `UI SMOKE FAILED (${failures} of ${Object.keys(steps).length} steps)` : 'UI SMOKE OK');
    return failures ? 1 : 0;
  } finally {
    await browser?.close().catch(() => {});
    await server?.stop();
    cleanup(tmp);
  }
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(3); });
