import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';

/** Tests run from the repository root (npm test); the fixture folder is only ever read. */
export const FIXTURE_MODEL = path.resolve('models', 'stories260K');
export const SHARED_DATA = path.resolve('..', 'shared', 'data');
export const EVAL_TEXT = path.join(SHARED_DATA, 'tinystories', 'eval.txt');

/** A fresh temporary folder, removed when the test file ends. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-test-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A writable copy of the fixture model, for tests that damage or edit a checkpoint. */
export function copyOfFixture(): string {
  const dir = path.join(tempDir(), 'model');
  fs.cpSync(FIXTURE_MODEL, dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
  return dir;
}

export function editJson(file: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}
