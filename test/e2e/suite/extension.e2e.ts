import * as assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'mocha';
import * as vscode from 'vscode';
import { activateExtension, copyModel, MessageSpy, sharedModel } from './helpers';

describe('PruneLens extension', () => {
  let spy: MessageSpy;
  before(() => {
    spy = new MessageSpy();
  });
  // Each test reads only the messages shown while it ran.
  beforeEach(() => spy.clear());
  afterEach(() => spy.assertNoErrors());
  after(() => spy.dispose());

  it('activates in the Node extension host', async () => {
    const ext = await activateExtension();
    assert.equal(ext.isActive, true);
    const commands = await vscode.commands.getCommands(true);
    for (const id of ['prunelens.showModelInfo', 'prunelens.evaluatePerplexity']) assert.ok(commands.includes(id), id);
  });

  it('Show Model Info summarises the workspace copy of the model', async () => {
    await vscode.commands.executeCommand('prunelens.showModelInfo', sharedModel('config.json'));
    const text = await spy.waitFor('info', /parameters/);
    // The digit grouping follows the extension host's locale.
    assert.match(text, /^LlamaForCausalLM: 5 layers, 8 heads \(4 KV\), 260\D?032 parameters, F32$/);
  });

  it('Show Model Info accepts a safetensors file in a copied model', async () => {
    const copy = await copyModel('info-copy');
    // As the Explorer calls it: the clicked file and the selection.
    const file = vscode.Uri.joinPath(copy, 'model.safetensors');
    await vscode.commands.executeCommand('prunelens.showModelInfo', file, [file]);
    assert.match(await spy.waitFor('info', /parameters/), /^LlamaForCausalLM: 5 layers/);
  });

  it('Evaluate Perplexity runs ONNX Runtime on the bundled text', async () => {
    await vscode.commands.executeCommand('prunelens.evaluatePerplexity', sharedModel('config.json'));
    const text = await spy.waitFor('info', /^Perplexity of stories260K/);
    // The CLI measures 4.648 on the same model and text (README, "Two commands").
    assert.equal(text, 'Perplexity of stories260K: 4.648 (595 windows of 256 tokens)');
  });
});
