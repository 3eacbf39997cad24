// Building blocks for end-to-end tests; they run inside the extension host, next to the extension.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

export const EXTENSION_ID = 'prunelens.prunelens';

/** The embedded model's name; run-tests.js copies it into the workspace before the window opens. */
export const MODEL = 'stories260K';

export async function activateExtension(): Promise<vscode.Extension<unknown>> {
  const ext = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(ext, `${EXTENSION_ID} is not loaded in the extension host`);
  await ext.activate();
  return ext;
}

export function workspaceRoot(): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the test window has no workspace folder');
  return folder.uri;
}

/** The workspace's copy of the embedded model; shared by every test, so only read it. */
export function sharedModel(file?: string): vscode.Uri {
  return file ? vscode.Uri.joinPath(workspaceRoot(), MODEL, file) : vscode.Uri.joinPath(workspaceRoot(), MODEL);
}

/** A fresh copy of the embedded model under the workspace, for a test that writes next to it or prunes it. */
export async function copyModel(name: string): Promise<vscode.Uri> {
  const target = vscode.Uri.joinPath(workspaceRoot(), name);
  await vscode.workspace.fs.copy(sharedModel(), target, { overwrite: true });
  return target;
}

/**
 * A safety net, not a measure: far above any step's work on a loaded 2-core machine, so a wait ends
 * when its event comes and this bound only stops a run that would never finish.
 */
export const SAFETY_NET_MS = 600_000;

/** Polls until probe returns something other than undefined/false; fails with `what` after timeoutMs. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = SAFETY_NET_MS,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

type Level = 'info' | 'warning' | 'error';
type Show = (message: string, ...rest: unknown[]) => Thenable<unknown>;
const SHOW: Record<Level, 'showInformationMessage' | 'showWarningMessage' | 'showErrorMessage'> = {
  info: 'showInformationMessage',
  warning: 'showWarningMessage',
  error: 'showErrorMessage',
};

/**
 * Records the extension's notification messages and answers each at once as if dismissed. Tests
 * load in the extension's own `vscode` API object, so the extension calls these replacements. The
 * commands report failures with an error message and wait for its answer, so without this a
 * failing command would hang until mocha's timeout instead of failing with its message.
 */
export class MessageSpy implements vscode.Disposable {
  readonly messages: { level: Level; text: string }[] = [];
  private readonly originals: [keyof typeof SHOW, Show][] = [];

  constructor() {
    const win = vscode.window as unknown as Record<string, Show>;
    for (const level of Object.keys(SHOW) as Level[]) {
      this.originals.push([level, win[SHOW[level]]!]);
      win[SHOW[level]] = (text: string) => {
        this.messages.push({ level, text });
        return Promise.resolve(undefined);
      };
    }
  }

  texts(level: Level): string[] {
    return this.messages.filter((m) => m.level === level).map((m) => m.text);
  }

  async waitFor(level: Level, pattern: RegExp, timeoutMs?: number): Promise<string> {
    return waitFor(`a ${level} message matching ${pattern}`, () => this.texts(level).find((t) => pattern.test(t)), timeoutMs);
  }

  assertNoErrors(): void {
    assert.deepEqual(this.texts('error'), [], 'the extension showed error messages');
  }

  clear(): void {
    this.messages.length = 0;
  }

  dispose(): void {
    const win = vscode.window as unknown as Record<string, Show>;
    for (const [level, original] of this.originals) win[SHOW[level]] = original;
  }
}
