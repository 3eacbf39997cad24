// UI smoke test: packages the extension with vsce, installs the VSIX into a fresh code-server, opens the
// workbench on a copy of the embedded model and drives it as a person would (clicks, drags, keys, hovers),
// one screenshot per step; then photographs the allocation panel, the Model view, the loss diff, Try It's
// side-by-side text and the runs comparison in Light Modern (where the steps ran) and again in Dark Modern.
// node ui-smoke.js [SCREENSHOT_DIR]   (default out/e2e/screenshots); env KEEP=1 keeps the temp folder;
// env STEPS=REGEX runs only the steps and views whose names match (STEPS='heatmap|17-reload': the heat map's).
// Add a step to `steps`: it gets the `ui` helpers below and is photographed when it returns. No step waits
// a fixed time for work to finish: each waits for what the UI shows when the work is done.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { REPO, log, makeTemp, makeWorkspace, startCodeServer, workbenchUrl, launchBrowser, cleanup, contextMenu, until } = require('./lib');

const escapeRe = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The steps run in the first; every theme's photographs follow. */
const THEMES = { light: 'Default Light Modern', dark: 'Default Dark Modern' };
const THEME_CLASS = { light: 'vs', dark: 'vs-dark' };
/** Long enough for planning or pruning the embedded model on a loaded 2-core machine; each wait ends as soon as the UI shows the result. */
const WORK_TIMEOUT = 300_000;

/** Brings each view the light-theme pass photographs back to the front. */
const views = {
  async panel(ui) {
    await ui.tab('PruneLens: Sparsity Allocation').click();
    await ui.expect(ui.panelText('Sparsity per decoder block'), 'the allocation panel is shown');
  },
  async tree(ui) {
    // A click on the container already shown would hide the side bar.
    if (!(await ui.row('Head 3.3').isVisible())) await ui.page.locator('.activitybar').getByRole('tab', { name: /PruneLens/ }).first().click();
    await ui.expect(ui.row('Head 3.3'), 'the Model view is shown');
  },
  async diff(ui) {
    await ui.tab('eval.txt').first().click();
    await ui.waitCount(ui.page.locator('.monaco-editor .view-overlays [class*="ced-"]'), (n) => n > 20, 'the loss diff is drawn');
  },
  async tryIt(ui) {
    // The reload before the photographs closed the preview, so it is asked for again as a person would;
    // both GGUF files are cached by then, so only the two generations run.
    const run = newestRun(ui.folder);
    await ui.runMenu(run, 'Try It\u2026');
    await ui.page.locator('.quick-input-widget input').fill('Lily and Ben went to the park');
    await ui.page.keyboard.press('Enter');
    await ui.expect(ui.previewText(`pruned: ${escapeRe(run)}`), "Try It's side-by-side text is shown", WORK_TIMEOUT);
  },
  async comparison(ui) {
    await ui.tab('Runs compared').click();
    await ui.expect(ui.previewText('runs compared'), 'the runs comparison is shown');
  },
  async heatmap(ui) {
    await ui.tab('PruneLens: Expert Heat Map').click();
    // The page was discarded while hidden; its selection and last result come back from its saved state.
    await ui.expect(ui.panelText('Written to'), 'the heat map shows its last result');
    const frame = await ui.heatmap();
    await ui.waitCount(frame.locator('button.cell[aria-pressed="true"]'), (n) => n === 7, 'the selection is kept');
  },
};

const steps = {
  '01-explorer': async (ui) => {
    await ui.treeItem('stories260K').click();
    await ui.expect(ui.treeItem('config.json'), 'the model folder expands in the Explorer');
  },
  '02-model-info-output': async (ui) => {
    await ui.contextMenu(ui.treeItem('config.json'), 'Show Model Info');
    await ui.expect(ui.page.locator('.notifications-toasts', { hasText: 'LlamaForCausalLM: 5 layers' }), 'the summary notification');
    await ui.page.getByRole('button', { name: 'Maximize Panel', exact: true }).click();
    // The channel scrolls to its end: the summary's last field.
    await ui.expect(ui.page.locator('.part.panel .view-lines', { hasText: '"activation": "silu"' }), 'the PruneLens output channel shows the summary');
  },
  '03-model-tree': async (ui) => {
    // The panel is still maximised from the step before; closing it gives the side bar its room back.
    await ui.page.keyboard.press('Escape');
    await ui.page.keyboard.press('Control+J');
    await ui.expect(ui.page.locator('.part.panel'), 'the panel is closed', 60_000, 'hidden');
    await ui.contextMenu(ui.treeItem('stories260K'), 'Open in Model View');
    // A wider side bar, so the tree's scores are not cut off: drag the sash at its right edge.
    const bar = await ui.page.locator('.part.sidebar').boundingBox();
    await ui.page.mouse.move(bar.x + bar.width + 2, bar.y + bar.height / 2);
    await ui.page.mouse.down();
    await ui.page.mouse.move(bar.x + 620, bar.y + bar.height / 2, { steps: 10 });
    await ui.page.mouse.up();
    for (const label of ['Layer 3', 'Attention', 'Heads', 'KV group 1']) await ui.expandRow(label);
    await ui.expect(ui.row('Head 3.3'), 'the Model view shows layer 3 with its KV groups and heads');
  },
  '04-model-scores': async (ui) => {
    await ui.page.locator('.pane-header', { hasText: 'Model' }).hover();
    await ui.page.getByRole('button', { name: 'Compute Importance Scores' }).click();
    await ui.expect(ui.toast('importance scores of stories260K are in the Model view'), 'Compute Importance Scores says when it is done', WORK_TIMEOUT);
    await ui.expect(ui.page.locator('.monaco-list-row', { hasText: 'output Δ' }), 'heads show their scores');
    await ui.page.locator('.pane-header', { hasText: 'Model' }).hover();
    await ui.page.getByRole('button', { name: 'Sort by Score (lowest first)' }).click();
    await ui.expect(ui.page.getByRole('button', { name: 'Sort by Position' }), 'the view is sorted by score and offers the position order back');
    await ui.dismissToasts();
  },
  '05-allocation-panel': async (ui) => {
    await ui.page.locator('.activitybar').getByRole('tab', { name: /Explorer/ }).first().click();
    await ui.contextMenu(ui.treeItem('stories260K'), 'Open Sparsity Allocation Panel');
    await ui.expect(ui.panelText('Plans ready.'), 'the allocation panel computed its plans', WORK_TIMEOUT);
    const frame = await ui.panel();
    // Arrow keys on block 0: four steps of half a percent.
    const block0 = frame.locator('#block-0');
    const before0 = Number(await block0.inputValue());
    await block0.focus();
    for (let i = 0; i < 4; i++) await ui.page.keyboard.press('ArrowRight');
    await ui.expectValue(block0, (v) => Math.abs(v - (before0 + 0.02)) < 1e-6, 'ArrowRight x4 raises block 0 by 2%');
    // Drag block 1's thumb to the right along its bar.
    const block1 = frame.locator('#block-1');
    const before1 = Number(await block1.inputValue());
    const box = await block1.boundingBox();
    const thumb = 12;
    const x = box.x + thumb / 2 + (box.width - thumb) * (before1 / 0.95);
    const y = box.y + box.height / 2;
    await ui.page.mouse.move(x, y);
    await ui.page.mouse.down();
    await ui.page.mouse.move(x + box.width * 0.1, y, { steps: 8 });
    await ui.page.mouse.up();
    await ui.expectValue(block1, (v) => v > before1 + 0.05, 'dragging raises block 1');
    await ui.expect(frame.locator('.estimate', { hasText: 'higher than uniform' }), 'the estimate prices the edit');
    // Expand block 2 to show its per-linear ratios.
    await frame.getByRole('button', { name: 'Block 2' }).click();
    await ui.expect(frame.locator('#block-2-linears #block-2-down_proj'), 'block 2 shows a slider per linear');
    await ui.expect(frame.locator('.axis .header', { hasText: 'Est. error' }), 'the error column has a header');
  },
  '06-apply': async (ui) => {
    const frame = await ui.panel();
    await frame.getByRole('button', { name: 'Apply' }).click();
    await ui.expect(ui.page.locator('.statusbar-item', { hasText: 'PPL' }), 'the status bar shows dense and pruned perplexity', WORK_TIMEOUT);
    await ui.expect(ui.tab('eval.txt'), 'the evaluation text opens as a read-only virtual document');
    await ui.dismissToasts();
  },
  '07-inline-diff-hover': async (ui) => {
    const overlays = ui.page.locator('.monaco-editor .view-overlays [class*="ced-"]');
    await ui.waitCount(overlays, (n) => n > 20, 'tokens are coloured');
    const lines = ui.page.locator('.monaco-editor .view-lines .view-line');
    await ui.expect(lines.filter({ hasText: 'Loss change per token' }), 'the legend heads the text');
    // A token well below the legend line.
    const boxes = await overlays.evaluateAll((els) => els.map((e) => e.getBoundingClientRect()).map((r) => ({ x: r.x, y: r.y, w: r.width, h: r.height })));
    const legendY = (await lines.filter({ hasText: 'Loss change per token' }).first().boundingBox()).y;
    const target = boxes.find((b) => b.y > legendY + 40 && b.w > 8);
    if (!target) throw new Error('no coloured token below the legend');
    await ui.page.mouse.move(target.x + target.w / 2, target.y + target.h / 2);
    const hover = ui.page.locator('.monaco-hover', { hasText: 'PruneLens token loss' });
    await ui.expect(hover, 'hovering a coloured token shows its losses');
    const text = await hover.first().innerText();
    if (!/dense: \d+\.\d{3} nats/.test(text) || !/pruned: \d+\.\d{3} nats/.test(text) || !/"[^"]*"/.test(text)) throw new Error(`the hover lacks the token or a loss: ${text}`);
    console.log(`PASS the hover names the token and both losses: ${text.split('\n')[0]}`);
  },
  '08-toggle': async (ui) => {
    const overlays = ui.page.locator('.monaco-editor .view-overlays [class*="ced-"]');
    await ui.page.mouse.move(5, 5);
    await ui.page.locator('.editor-actions').getByRole('button', { name: 'Hide Loss Diff Colours' }).click();
    await ui.expect(ui.page.locator('.editor-actions').getByRole('button', { name: 'Show Loss Diff Colours' }), 'the toggle turns into Show');
    await ui.waitCount(overlays, (n) => n === 0, 'the colours are gone');
    await ui.page.locator('.editor-actions').getByRole('button', { name: 'Show Loss Diff Colours' }).click();
    await ui.waitCount(overlays, (n) => n > 20, 'the colours are back');
    await ui.page.locator('.editor-actions').getByRole('button', { name: 'Next Worst Token' }).click();
    await ui.expect(ui.page.locator('.statusbar-item', { hasText: 'token 1 of' }), 'Next Worst Token goes to the largest rise in loss');
  },
  '09-export': async (ui) => {
    await views.panel(ui);
    // The panel's page was discarded while hidden; the last result comes back from its saved state.
    await ui.expect(ui.panelText('Applied to'), 'the last result survives hide and show');
    const frame = await ui.panel();
    await frame.getByRole('button', { name: 'Export model…' }).click();
    // code-server's save dialog is a quick input holding the suggested path; Enter accepts it.
    await ui.expect(ui.page.locator('.quick-input-widget'), 'the save dialog asks where');
    await ui.page.keyboard.press('Enter');
    await ui.expect(ui.panelText('Exported (a copy of the applied model)'), 'exporting the applied plan copies the applied model', WORK_TIMEOUT);
    await ui.dismissToasts();
  },
  '10-apply-another-plan': async (ui) => {
    // A second, different run to compare with: back to the uniform plan, applied.
    await views.panel(ui);
    const frame = await ui.panel();
    await frame.getByRole('button', { name: 'Reset edits' }).click();
    await ui.expectValue(frame.locator('#block-1'), (v) => Math.abs(v - 0.5) < 1e-6, 'Reset edits puts block 1 back at the uniform plan\'s 50%');
    await frame.getByRole('button', { name: 'Apply' }).click();
    await ui.until('a third run folder', () => runFolders(ui.folder).length === 3, WORK_TIMEOUT);
    // The finished run opens its loss diff in front of the panel, possibly after a click on the panel's tab
    // brought it back, so the tab is clicked until the panel shows a result.
    await ui.until('the panel reports an applied run', async () => {
      await ui.tab('PruneLens: Sparsity Allocation').click();
      return ui.panelText('Applied to').first().waitFor({ timeout: 5_000 }).then(() => true, () => false);
    }, WORK_TIMEOUT);
    console.log('PASS the panel reports an applied run');
    await ui.dismissToasts();
  },
  '11-export-gguf': async (ui) => {
    const run = newestRun(ui.folder);
    await ui.runMenu(run, 'Export to GGUF\u2026');
    const input = ui.page.locator('.quick-input-widget input');
    await ui.expect(ui.page.locator('.quick-input-widget', { hasText: 'weight type' }), 'Export to GGUF asks for the weight type');
    await input.fill('q8_0');
    await ui.until('q8_0 alone in the type list', async () => (await ui.page.locator('.quick-input-list .monaco-list-row').allInnerTexts()).every((t) => t.startsWith('q8_0')), 60_000);
    await ui.page.keyboard.press('Enter');
    await ui.expect(ui.page.locator('.quick-input-widget', { hasText: 'Export and measure in llama.cpp' }), 'then whether to measure the savings in llama.cpp');
    await ui.page.keyboard.press('Enter');
    // code-server's save dialog is a quick input holding the suggested path; Enter accepts it.
    const file = path.join(ui.folder, `${run}-q8_0.gguf`);
    await ui.until('the save dialog suggests <run>-q8_0.gguf', async () => (await input.inputValue().catch(() => '')).endsWith(`${run}-q8_0.gguf`), 60_000);
    await ui.page.keyboard.press('Enter');
    await ui.until('the GGUF file in the workspace', () => fs.existsSync(file), WORK_TIMEOUT);
    if (fs.readFileSync(file).subarray(0, 4).toString('latin1') !== 'GGUF') throw new Error(`${file} is not a GGUF file`);
    console.log(`PASS ${path.basename(file)} is written (${fs.statSync(file).size} bytes, starts with GGUF)`);
    await ui.expect(ui.toast(`exported ${run}-q8_0.gguf`), 'the finish message reports the export and the savings', WORK_TIMEOUT);
    const savings = JSON.parse(fs.readFileSync(path.join(ui.folder, run, 'prunelens.json'), 'utf8')).gguf?.savings;
    if (!savings || savings.pruned.bytes !== fs.statSync(file).size) throw new Error(`the run's record lacks the measured savings: ${JSON.stringify(savings)}`);
    console.log(`PASS the run's prunelens.json holds the llama.cpp savings (${savings.dense.bytes} -> ${savings.pruned.bytes} bytes, generation ${savings.dense.generateTokensPerSecond.toFixed(0)} -> ${savings.pruned.generateTokensPerSecond.toFixed(0)} tokens/s)`);
    await ui.dismissToasts();
    await ui.page.locator('.activitybar').getByRole('tab', { name: /Explorer/ }).first().click();
    await ui.expect(ui.treeItem(path.basename(file)), 'the GGUF file appears in the Explorer');
  },
  '12-try-it': async (ui) => {
    const run = newestRun(ui.folder);
    await ui.runMenu(run, 'Try It\u2026');
    const prompt = 'Lily and Ben went to the park';
    await ui.expect(ui.page.locator('.quick-input-widget', { hasText: 'continue it greedily' }), 'Try It asks for a prompt');
    await ui.page.locator('.quick-input-widget input').fill(prompt);
    await ui.page.keyboard.press('Enter');
    await ui.expect(ui.previewText(`pruned: ${escapeRe(run)}`), 'the dense and the pruned text open side by side', WORK_TIMEOUT);
    const cells = await ui.previewCells(`pruned: ${escapeRe(run)}`);
    if (cells.length < 2 || !cells.slice(0, 2).every((c) => c.startsWith(prompt) && c.length > prompt.length + 20)) throw new Error(`the two continuations are not there: ${JSON.stringify(cells)}`);
    console.log(`PASS both models continued "${prompt}": dense "${cells[0].slice(prompt.length, prompt.length + 60)}…", pruned "${cells[1].slice(prompt.length, prompt.length + 60)}…"`);
  },
  '13-runs-comparison': async (ui) => {
    await ui.command('PruneLens: Compare Runs');
    // Tick the first applied run and the one just made (not the exported copy): a click on a row of a
    // multi-select pick toggles its checkbox.
    const rows = ui.page.locator('.quick-input-list .monaco-list-row');
    await ui.waitCount(rows, (n) => n === 3, 'the picker lists the three runs');
    const folders = runFolders(ui.folder);
    const copy = folders.find((f) => f.endsWith('-2'));
    const texts = await rows.allInnerTexts();
    const picks = texts.map((t, i) => [t, i]).filter(([t]) => !t.includes(copy)).map(([, i]) => i);
    if (picks.length !== 2) throw new Error(`cannot tell the runs apart: ${texts.join(' | ')}`);
    for (const i of picks) await rows.nth(i).click();
    await ui.expect(ui.page.locator('.quick-input-widget', { hasText: '2 Selected' }), 'two different runs are ticked');
    await ui.page.keyboard.press('Enter');
    await ui.expect(ui.previewText('sparsity per decoder block'), 'the runs comparison table opens');
    await ui.expect(ui.previewText('In llama.cpp \\(GGUF'), 'the comparison shows the measured GGUF savings');
    // Scrolled to that section for this step's photograph.
    for (const frame of ui.page.frames()) {
      const heading = frame.locator('h2', { hasText: 'In llama.cpp' });
      if (await heading.count().catch(() => 0)) await heading.first().scrollIntoViewIfNeeded();
    }
  },
  '14-heatmap-open': async (ui) => {
    // A click on the container already shown would hide the side bar.
    if (!(await ui.page.locator('.explorer-folders-view').isVisible())) await ui.page.locator('.activitybar').getByRole('tab', { name: /Explorer/ }).first().click();
    await ui.contextMenu(ui.treeItem(MOE_MODEL), 'Show Expert Heat Map');
    await ui.expect(ui.panelText('Statistics from'), 'the heat map computed the expert statistics in the engine process', WORK_TIMEOUT);
    const frame = await ui.heatmap();
    await ui.waitCount(frame.locator('button.cell'), (n) => n === 24, 'a cell per layer and expert (3 x 8)');
    // Colour by routing share: the cells then print percentages.
    await frame.locator('#metric').click();
    await frame.getByRole('option', { name: 'routing share' }).click();
    await ui.until('cells show routing shares', async () => /%$/.test((await frame.locator('button.cell').first().innerText()).trim()), 60_000);
    console.log('PASS the cells are coloured and labelled by routing share');
  },
  '15-heatmap-select': async (ui) => {
    const frame = await ui.heatmap();
    // The two lowest-REAP experts of every layer, then one more of layer 0 clicked by hand.
    await frame.locator('#metric').click();
    await frame.getByRole('option', { name: 'REAP' }).click();
    await frame.locator('#lowest-n').fill('2');
    await frame.locator('#lowest-n').press('Tab');
    await frame.getByRole('button', { name: 'Select lowest' }).click();
    await ui.waitCount(frame.locator('button.cell[aria-pressed="true"]'), (n) => n === 6, 'two experts of each layer are selected');
    await ui.expect(frame.locator('.cost', { hasText: 'all selected experts are removed outright' }), 'equal counts are priced as a true removal');
    // The person picks layer 0's lowest-REAP expert among those left, reading the printed values.
    const left = frame.locator('button.cell[data-layer="0"][aria-pressed="false"]');
    const values = (await left.allInnerTexts()).map(Number);
    await left.nth(values.indexOf(Math.min(...values))).click();
    await ui.waitCount(frame.locator('button.cell[aria-pressed="true"]'), (n) => n === 7, 'a click selects one more expert of layer 0');
    await ui.expect(frame.locator('.cost', { hasText: 'Masked rather than removed' }), 'the extra expert is priced as masked, not removed');
    await ui.expect(frame.locator('.cost', { hasText: 'Experts left to route to: L0 5, L1 6, L2 6' }), 'experts left per layer');
  },
  '16-heatmap-apply': async (ui) => {
    const frame = await ui.heatmap();
    await frame.getByRole('button', { name: 'Apply' }).click();
    await ui.expect(ui.panelText('Written to'), 'Apply removed the experts and reports the perplexity', WORK_TIMEOUT);
    const run = runFolders(ui.folder).find((n) => n.startsWith(`${MOE_MODEL}-experts-removed-7-`));
    if (!run) throw new Error(`no expert-removal run in ${runFolders(ui.folder).join(', ')}`);
    const record = JSON.parse(fs.readFileSync(path.join(ui.folder, run, 'prunelens.json'), 'utf8'));
    const e = record.experts;
    if (Object.values(e.removed).some((r) => r.length !== 2) || e.masked['0']?.length !== 1 || typeof e.maskedRouting?.['0'] !== 'number' || !(record.perplexity.pruned > 0)) throw new Error(`unexpected record: ${JSON.stringify(e)}`);
    console.log(`PASS ${run}: 2 experts cut from each layer, 1 masked in layer 0 (${(100 * e.maskedRouting['0']).toFixed(2)}% routings per token), perplexity ${record.perplexity.dense.toFixed(3)} -> ${record.perplexity.pruned.toFixed(3)}`);
    if (!(await ui.page.locator('.pane-header', { hasText: /^Runs/ }).isVisible())) await ui.page.locator('.activitybar').getByRole('tab', { name: /PruneLens/ }).first().click();
    const header = ui.page.locator('.pane-header', { hasText: /^Runs/ });
    if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
    await ui.expect(ui.page.locator('.monaco-list-row', { hasText: 'removed 7 named experts (1 masked)' }), 'the run appears in the Runs view');
    await ui.dismissToasts();
  },
};

const MOE_MODEL = 'tinystories-moe-379K';

/** The workspace's PruneLens outputs: folders holding a prunelens.json. */
function runFolders(folder) {
  return fs.readdirSync(folder).filter((n) => fs.existsSync(path.join(folder, n, 'prunelens.json')));
}

/** The run of the embedded model made last (by its record's creation time); the MoE fixture's runs are the heat map's. */
function newestRun(folder) {
  const record = (n) => JSON.parse(fs.readFileSync(path.join(folder, n, 'prunelens.json'), 'utf8'));
  return runFolders(folder).filter((n) => record(n).source.path.endsWith('stories260K')).sort((a, b) => record(b).created.localeCompare(record(a).created))[0];
}

/** After the photographs: what must survive a window reload. */
const last = {
  '17-reload': async (ui) => {
    await ui.command('Developer: Reload Window');
    await ui.expect(ui.page.locator('.part.activitybar'), 'the window is back', WORK_TIMEOUT);
  },
  '18-diff-after-reload': async (ui) => {
    await views.diff(ui);
    console.log('PASS the loss diff is restored, coloured, after a window reload');
  },
  '19-comparison-after-reload': async (ui) => {
    await views.comparison(ui);
    await ui.expect(ui.previewText('sparsity per decoder block'), 'the runs comparison is restored with its table after a window reload');
  },
  '20-heatmap-after-reload': async (ui) => {
    await views.heatmap(ui);
    console.log('PASS the expert heat map is restored with its selection and result after a window reload');
  },
};

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${path.basename(args[0])} failed (${r.status}):\n${r.stdout}${r.stderr}`);
}

/** Sets the colour theme in the user settings the workbench watches. */
function setTheme(tmp, theme) {
  const file = path.join(tmp, 'ud/User/settings.json');
  const settings = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify({ ...settings, 'workbench.colorTheme': theme }, null, 2));
}

async function main() {
  const shots = path.resolve(process.argv[2] || path.join(REPO, 'out/e2e/screenshots'));
  fs.rmSync(shots, { recursive: true, force: true });
  fs.mkdirSync(shots, { recursive: true });
  const tmp = makeTemp();
  setTheme(tmp, Object.values(THEMES)[0]);
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
    // The trained MoE fixture, for the expert heat map (its Explorer menu item is offered on MoE checkpoints only).
    fs.cpSync(path.join(REPO, 'models', MOE_MODEL), path.join(folder, MOE_MODEL), { recursive: true });
    // Small calibration and evaluation keep scores, plans and pruning short; 16 windows make the panel's quick plan (8) differ from the full one.
    fs.mkdirSync(path.join(folder, '.vscode'), { recursive: true });
    fs.writeFileSync(path.join(folder, '.vscode', 'settings.json'), JSON.stringify({ 'prunelens.nsamples': 16, 'prunelens.seqlen': 64 }));
    // Without a test payload the extension host takes its environment from the server's.
    server = await startCodeServer(tmp, { env: { ORT_DISABLE_TELEMETRY: '1' } });
    let page;
    ({ browser, page } = await launchBrowser(tmp));
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    // The machine may be shared and loaded: every wait is for something the UI shows, bounded only to end a hung run.
    page.setDefaultTimeout(120_000);

    let failures = 0;
    const ui = {
      page,
      folder,
      treeItem: (name) => page.getByRole('treeitem', { name, exact: true }),
      /** A tree row whose label is exactly `label` (its description may say more: "Attention 8 heads…" is not "Heads"). */
      row: (label) => page.locator('.monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) }).first(),
      tab: (label) => page.locator('.tabs-container .tab', { hasText: label }),
      toast: (text) => page.locator('.notifications-toasts', { hasText: text }),
      /** The allocation panel's page: found by its content, since the Markdown preview is a webview too. */
      async panel() {
        for (let i = 0; i < 100; i++) {
          for (const frame of page.frames()) {
            if (await frame.locator('#export-plan').count().catch(() => 0)) return frame;
          }
          await page.waitForTimeout(300);
        }
        throw new Error('the allocation panel page is not there');
      },
      /** The expert heat map's page, found by its content as the allocation panel's is. */
      async heatmap() {
        for (let i = 0; i < 100; i++) {
          for (const frame of page.frames()) {
            if (await frame.locator('#select-lowest').count().catch(() => 0)) return frame;
          }
          await page.waitForTimeout(300);
        }
        throw new Error('the expert heat map page is not there');
      },
      panelText: (text) => ({ first: () => ({ waitFor: async ({ timeout }) => {
        const end = Date.now() + timeout;
        while (Date.now() < end) {
          for (const frame of page.frames()) {
            if (await frame.locator('#app', { hasText: text }).count().catch(() => 0)) return;
          }
          await page.waitForTimeout(300);
        }
        throw new Error(`no panel said "${text}"`);
      } }) }),
      previewText: (text) => ({ first: () => ({ waitFor: async ({ timeout }) => {
        const end = Date.now() + timeout;
        const pattern = new RegExp(text, 'i');
        while (Date.now() < end) {
          for (const frame of page.frames()) {
            if (await frame.locator('body', { hasText: pattern }).count().catch(() => 0)) return;
          }
          await page.waitForTimeout(300);
        }
        throw new Error(`no Markdown preview says "${text}"`);
      } }) }),
      until: (what, probe, timeout) => until(page, what, probe, timeout),
      async expect(locator, what, timeout = 120_000, state = 'visible') {
        await locator.first().waitFor({ timeout, state });
        console.log(`PASS ${what}`);
      },
      async expectValue(locator, ok, what) {
        const end = Date.now() + 60_000;
        let value;
        while (Date.now() < end) {
          value = Number(await locator.inputValue());
          if (ok(value)) return console.log(`PASS ${what} (${value})`);
          await page.waitForTimeout(100);
        }
        throw new Error(`${what}: value ${value}`);
      },
      async waitCount(locator, ok, what) {
        const end = Date.now() + 60_000;
        let n;
        while (Date.now() < end) {
          n = await locator.count();
          if (ok(n)) return console.log(`PASS ${what} (${n})`);
          await page.waitForTimeout(200);
        }
        throw new Error(`${what}: ${n}`);
      },
      /** A click can land while the tree re-renders and only select the row; the keyboard then expands it. */
      async expandRow(label) {
        const row = ui.row(label);
        await row.waitFor();
        await row.click();
        if ((await row.getAttribute('aria-expanded')) === 'false') await page.keyboard.press('ArrowRight');
        await page.waitForFunction((el) => el.getAttribute('aria-expanded') === 'true', await row.elementHandle(), { timeout: 60_000 });
      },
      /** Toasts cover the lower right of every later screenshot; the clear buttons show only on hover, so through the palette. */
      async dismissToasts() {
        await ui.command('Notifications: Clear All Notifications');
        await ui.expect(page.locator('.notifications-toasts .notification-toast'), 'the notifications are cleared', 60_000, 'hidden');
      },
      /**
       * F1, the title typed, and Enter once the row with keyboard focus is that command (a row that only
       * resembles it can come first: ArrowDown moves on, checking after every key).
       */
      async command(title) {
        await page.keyboard.press('F1');
        await page.locator('.quick-input-widget input').fill(`>${title}`);
        const focused = page.locator('.quick-input-list .monaco-list-row.focused').filter({ visible: true }).first();
        const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|$)`);
        const isTitle = async () => exact.test(await focused.innerText({ timeout: 1000 }).catch(() => ''));
        await ui.until(`"${title}" focused in the palette`, async () => {
          if (await isTitle()) return true;
          await page.keyboard.press('ArrowDown');
          await page.waitForTimeout(150);
          return isTitle();
        }, 60_000);
        await page.keyboard.press('Enter');
      },
      /** The cells of the first table in a Markdown preview whose text matches `text` (the workbench's own frame has no table cells). */
      async previewCells(text) {
        const pattern = new RegExp(text, 'i');
        for (const frame of page.frames()) {
          const cells = frame.locator('td');
          if ((await cells.count().catch(() => 0)) && (await frame.locator('body', { hasText: pattern }).count().catch(() => 0))) return cells.allInnerTexts();
        }
        return [];
      },
      /** Right-click the Runs view's row of the run in folder `run` (its description ends with the folder's name), then `item`. */
      async runMenu(run, item) {
        if (!(await page.locator('.pane-header', { hasText: /^Runs/ }).isVisible())) await page.locator('.activitybar').getByRole('tab', { name: /PruneLens/ }).first().click();
        const header = page.locator('.pane-header', { hasText: /^Runs/ });
        if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
        const row = page.locator('.monaco-list-row', { hasText: new RegExp(`· ${escapeRe(run)}(\\s|$)`) });
        await ui.expect(row, `the Runs view lists ${run}`);
        await contextMenu(page, row.first(), [item], { timeout: WORK_TIMEOUT, shot: async () => {} });
      },
      /** Right-click, then PruneLens's submenu, then `item` (lib.js, contextMenu). */
      contextMenu: (target, item) => contextMenu(page, target, ['PruneLens', item], { timeout: WORK_TIMEOUT, shot: async () => {} }),
    };
    const shoot = async (name) => {
      // Notifications and panels animate in; a shot taken at once catches them half drawn.
      await page.waitForTimeout(700);
      await page.screenshot({ path: path.join(shots, `${name}.png`) });
    };
    const attempt = async (name, work) => {
      try {
        await work();
        await shoot(name);
      } catch (e) {
        failures++;
        console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
        await page.screenshot({ path: path.join(shots, `${name}-FAILED.png`) });
        // Whatever the failure left open (a menu, a quick input) must not swallow the next step's clicks and keys.
        for (let i = 0; i < 3; i++) await page.keyboard.press('Escape').catch(() => {});
      }
      log(`step ${name} done`);
    };
    await page.goto(workbenchUrl(server.base, folder), { timeout: 300_000 });
    await ui.expect(page.locator('.explorer-folders-view'), 'the workbench shows the Explorer', 300_000);
    const only = process.env.STEPS ? new RegExp(process.env.STEPS) : undefined;
    const picked = (record) => Object.entries(record).filter(([name]) => !only || only.test(name));
    for (const [name, step] of picked(steps)) await attempt(name, () => step(ui));
    for (const [theme, label] of Object.entries(THEMES)) {
      if (theme !== Object.keys(THEMES)[0]) {
        // As a person switches: the palette's Color Theme picker.
        try {
          await ui.command('Preferences: Color Theme');
          // Typing must wait for the theme picker itself: typed into the closing command palette, it would search files.
          const input = page.locator('.quick-input-widget input');
          const themeRow = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Light Modern' });
          await ui.until('the colour theme picker', async () => (await themeRow.count()) > 0 && !(await input.inputValue()).startsWith('>'), 60_000);
          // The picker lists "Dark Modern" (the setting's value is "Default Dark Modern").
          const shown = label.replace(/^Default /, '');
          await input.fill(shown);
          await page.locator('.quick-input-list .monaco-list-row', { hasText: shown }).first().waitFor();
          await page.keyboard.press('Enter');
          await page.waitForFunction((cls) => document.querySelector('.monaco-workbench')?.classList.contains(cls), THEME_CLASS[theme]);
          console.log(`PASS the workbench is in ${label}`);
        } catch (e) {
          failures++;
          console.log(`FAIL switching to ${label}: ${e.message.split('\n')[0]}`);
          await page.screenshot({ path: path.join(shots, `theme-${theme}-FAILED.png`) });
          continue;
        }
      }
      for (const [name, show] of picked(views)) await attempt(`${theme}-${name}`, () => show(ui));
    }
    for (const [name, step] of picked(last)) await attempt(name, () => step(ui));
    const total = picked(steps).length + picked(views).length * Object.keys(THEMES).length + picked(last).length;
    console.log(`screenshots in ${shots}`);
    console.log(failures ? `UI SMOKE FAILED (${failures} of ${total} steps)` : 'UI SMOKE OK');
    return failures ? 1 : 0;
  } finally {
    await browser?.close().catch(() => {});
    await server?.stop();
    cleanup(tmp);
  }
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(3); });
