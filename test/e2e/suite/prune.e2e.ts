import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'mocha';
import * as vscode from 'vscode';
import { activateExtension, copyModel, MessageSpy, waitFor } from './helpers';

interface Api {
  onDidFinishRun: vscode.Event<{ folder: vscode.Uri }>;
  modelTree: vscode.TreeDataProvider<unknown>;
}

/** The Model view's tree as labels, walked through the same provider the view renders. */
async function labels(tree: vscode.TreeDataProvider<unknown>, node?: unknown): Promise<{ label: string; description: string; children: unknown[] }[]> {
  const children = (await tree.getChildren(node)) ?? [];
  return Promise.all(
    children.map(async (child) => {
      const item = await tree.getTreeItem(child);
      const label = typeof item.label === 'string' ? item.label : (item.label?.label ?? '');
      return { label, description: String(item.description ?? ''), children: [child] };
    }),
  );
}

async function childNamed(tree: vscode.TreeDataProvider<unknown>, parent: unknown, label: string): Promise<unknown> {
  const found = (await labels(tree, parent)).find((c) => c.label === label);
  assert.ok(found, `no "${label}" under ${String(parent)}`);
  return found.children[0];
}

describe('Prune and the Model view', () => {
  let spy: MessageSpy;
  let api: Api;
  let model: vscode.Uri;
  before(async () => {
    spy = new MessageSpy();
    api = (await activateExtension()).exports as Api;
    model = await copyModel('prune-source');
  });
  beforeEach(() => spy.clear());
  afterEach(() => spy.assertNoErrors());
  after(() => spy.dispose());

  it('prunes with Wanda 50% from the command and reports the run', async () => {
    const out = path.join(path.dirname(model.fsPath), 'prune-source-wanda-50');
    // Only this run's event: another test's late run must not satisfy this one.
    const finished = new Promise<vscode.Uri>((resolve) => {
      const sub = api.onDidFinishRun(({ folder }) => {
        if (folder.fsPath !== out) return;
        sub.dispose();
        resolve(folder);
      });
    });
    await vscode.commands.executeCommand('prunelens.prune', model, {
      method: 'wanda',
      sparsity: 0.5,
      calibration: { nsamples: 16, seqlen: 128 },
      evaluation: { seqlen: 128, maxWindows: 8 },
      out,
    });
    assert.equal((await finished).fsPath, out);
    const record = JSON.parse(fs.readFileSync(path.join(out, 'prunelens.json'), 'utf8')) as { measured: { sparsity: number }; perplexity: { dense: number; pruned: number } };
    assert.equal(record.measured.sparsity, 0.5);
    assert.ok(record.perplexity.pruned > record.perplexity.dense);
    assert.match(await spy.waitFor('info', /prune-source pruned with/), /perplexity \d+\.\d{3} → \d+\.\d{3}/);
    assert.ok(fs.existsSync(path.join(out, 'prunelens-tokens.safetensors')));
  });

  it('shows the model as 5 layers with 8 heads in 4 key/value groups', async () => {
    await vscode.commands.executeCommand('prunelens.openModel', model);
    const tree = api.modelTree;
    const root = await waitFor('the Model view to show the model', async () => (await labels(tree))[0]);
    const layers = (await labels(tree, root.children[0])).filter((c) => /^Layer \d$/.test(c.label));
    assert.deepEqual(layers.map((l) => l.label), ['Layer 0', 'Layer 1', 'Layer 2', 'Layer 3', 'Layer 4']);
    const attention = await childNamed(tree, layers[3]!.children[0], 'Attention');
    const groups = await labels(tree, await childNamed(tree, attention, 'Heads'));
    assert.deepEqual(groups.map((g) => g.label), ['KV group 0', 'KV group 1', 'KV group 2', 'KV group 3']);
    const heads = (await Promise.all(groups.map((g) => labels(tree, g.children[0])))).flat().map((h) => h.label);
    assert.deepEqual(heads, [0, 1, 2, 3, 4, 5, 6, 7].map((h) => `Head 3.${h}`));
  });
});
