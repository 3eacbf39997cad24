import * as vscode from 'vscode';
import type { Provider } from '../engine/graph/session';

/** Mirrors the `prunelens.*` settings declared in package.json. */
export interface PruneLensConfig {
  provider: Provider;
  threads: number;
  seqlen: number;
  evaluationText: string;
}

export function readConfig(): PruneLensConfig {
  const c = vscode.workspace.getConfiguration('prunelens');
  return {
    provider: c.get<Provider>('provider', 'cpu'),
    threads: c.get<number>('threads', 0),
    seqlen: c.get<number>('seqlen', 256),
    evaluationText: c.get<string>('evaluationText', ''),
  };
}
