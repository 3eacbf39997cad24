import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'mocha';
import * as vscode from 'vscode';
import { OWL_DEFAULTS } from '../../../src/engine/allocate/owl';
import type { PruneRecord } from '../../../src/engine/export/record';
import { EngineJobs } from '../../../src/extension/worker/engine-jobs';
import type { FromWebview } from '../../../src/shared/protocol';
import { activateExtension, copyModel, MessageSpy, SAFETY_NET_MS, waitFor } from './helpers';

interface Api {
  allocationPanel: {
    onDidReceiveMessage: vscode.Event<FromWebview>;
    onDidPrune: vscode.Event<PruneRecord>;
    deliver(message: FromWebview): void;
  };
  lossDiff: { onDidDecorate: vscode.Event<{ uri: vscode.Uri; ranges: number }> };
}

function next<T>(event: vscode.Event<T>, accept: (value: T) => boolean, timeoutMs = SAFETY_NET_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms`)), timeoutMs);
    const sub = event((value) => {
      if (!accept(value)) return;
      clearTimeout(timer);
      sub.dispose();
      resolve(value);
    });
  });
}

describe('Sparsity allocation panel and inline loss diff', () => {
  let spy: MessageSpy;
  let api: Api;
  let model: vscode.Uri;
  // The bundled text the panel calibrates on by default (this bundle's own paths point elsewhere).
  let calibrationText: string;
  // The reference plan is made in an engine process, as the extension makes its own: never on the host's thread.
  let engine: EngineJobs;
  const settings = vscode.workspace.getConfiguration('prunelens');
  before(async () => {
    spy = new MessageSpy();
    const extension = await activateExtension();
    api = extension.exports as Api;
    calibrationText = path.join(extension.extensionPath, 'data', 'tinystories', 'calibration.txt');
    engine = new EngineJobs(path.join(extension.extensionPath, 'dist', 'engine-worker.js'));
    model = await copyModel('panel-source');
    // Small calibration keeps the three plans (each a full sequential pass) to seconds.
    await settings.update('nsamples', 8, vscode.ConfigurationTarget.Workspace);
    await settings.update('seqlen', 64, vscode.ConfigurationTarget.Workspace);
  });
  afterEach(() => spy.assertNoErrors());
  after(async () => {
    spy.dispose();
    await settings.update('nsamples', undefined, vscode.ConfigurationTarget.Workspace);
    await settings.update('seqlen', undefined, vscode.ConfigurationTarget.Workspace);
  });

  it('opens, hears the page say ready, applies an OWL plan and colours the evaluation text', async () => {
    const panel = api.allocationPanel;
    const ready = next(panel.onDidReceiveMessage, (m) => m.type === 'ready');
    // The page asks for an estimate as soon as the host's plans reach it.
    const plansShown = next(panel.onDidReceiveMessage, (m) => m.type === 'requestEstimate');
    await vscode.commands.executeCommand('prunelens.openAllocationPanel', model);
    await ready;
    await plansShown;

    const owl = await engine.run('plan', {
      model: model.fsPath,
      spec: { method: 'wanda', sparsity: 0.5, include: [], exclude: [], blocksize: 128, percdamp: 0.01 },
      allocation: { kind: 'owl', ...OWL_DEFAULTS },
      calibration: { file: calibrationText, nsamples: 8, seqlen: 64, seed: 0 },
      runtime: { provider: 'cpu' },
    });
    const blocks = owl.blocks.map((b) => b.sparsity);
    assert.ok(new Set(blocks.map((b) => b.toFixed(3))).size > 1, 'OWL should give the blocks different ratios');

    // Only a run of this test's model counts.
    const pruned = next(panel.onDidPrune, (r) => path.basename(r.output).startsWith('panel-source-'));
    const decorated = next(api.lossDiff.onDidDecorate, (d) => d.ranges > 0);
    panel.deliver({ type: 'apply', allocation: 'owl', blocks });
    const record = await pruned;
    assert.equal(record.plan.allocation, 'owl');
    record.layers.forEach((layer, i) => assert.ok(Math.abs(layer.sparsity - blocks[i]!) < 1e-3, `block ${i}: ${layer.sparsity} vs ${blocks[i]}`));
    assert.ok(fs.existsSync(path.join(record.output, 'prunelens-report.md')));

    const { uri, ranges } = await decorated;
    assert.equal(path.basename(uri.fsPath), 'eval.txt');
    assert.ok(ranges > 100, `${ranges} coloured tokens`);
    assert.ok(vscode.window.visibleTextEditors.some((e) => e.document.uri.fsPath === uri.fsPath), 'the evaluation text is open');
  });

  it('exports the edited plan and the model to a folder the user picks', async () => {
    const out = path.join(path.dirname(model.fsPath), 'panel-export');
    const win = vscode.window as unknown as { showSaveDialog: typeof vscode.window.showSaveDialog };
    const original = win.showSaveDialog;
    win.showSaveDialog = async () => vscode.Uri.file(out);
    try {
      const pruned = next(api.allocationPanel.onDidPrune, (r) => r.output === out);
      api.allocationPanel.deliver({ type: 'export', allocation: 'uniform', blocks: [0.4, 0.6, 0.5, 0.5, 0.5] });
      const record = await pruned;
      assert.equal(record.output, out);
      assert.deepEqual(record.layers.map((l) => +l.sparsity.toFixed(3)), [0.4, 0.6, 0.5, 0.5, 0.5]);
      assert.ok(fs.existsSync(`${out}.plan.json`), 'the plan is kept beside the export');
      await waitFor('prunelens.json in the export', () => fs.existsSync(path.join(out, 'prunelens.json')));
    } finally {
      win.showSaveDialog = original;
    }
  });
});
