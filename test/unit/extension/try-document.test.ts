import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { markdownText, tryDocument } from '../../../src/extension/runs/try-document';

describe('Try It document', () => {
  const side = (model: string, text: string, tokens: number) => ({ model, file: `/cache/${model}.gguf`, text, ids: [], tokens, promptTokens: 10, tokensPerSecond: 123.4 });
  const doc = tryDocument(
    { prompt: 'Once upon a time', type: 'f16', maxTokens: 64, runtime: 'llama.cpp via node-llama-cpp 3.21.1 (prebuilt CPU, 1 thread)', dense: side('/m/stories260K', ', a girl | a <b>cat</b>\nsaid *hi*', 64), pruned: side('/w/run20', ' there', 1) },
    'heads, channels 20.0%',
  );
  const lines = doc.split('\n');

  it('puts the two continuations side by side in one table row, each after the prompt in bold', () => {
    const header = lines.findIndex((l) => l.startsWith('| dense: stories260K | pruned: run20 |'));
    assert.ok(header > 0, doc);
    const cells = lines[header + 2]!.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    assert.equal(cells.length, 2, 'a pipe in the text split the row');
    assert.ok(cells[0]!.startsWith('**Once upon a time**, a girl \\| a &lt;b&gt;cat&lt;/b&gt;<br>said \\*hi\\*'), cells[0]);
    assert.equal(cells[1], '**Once upon a time** there');
    assert.deepEqual(lines[header + 3], '| 64 tokens, 123 tokens/s | 1 tokens (the model ended the text), 123 tokens/s |');
  });

  it('escapes Markdown and HTML so model text is shown as text', () => {
    assert.equal(markdownText('# [x](y) `z` <i>'), '\\# \\[x\\]\\(y\\) \\`z\\` &lt;i&gt;');
  });
});
