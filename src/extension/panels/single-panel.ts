import * as vscode from 'vscode';
import { webviewOptions } from './webview-html';

/** What a panel's host object offers the registration: show another request in place, or close. */
export interface PanelHost<R> {
  open(request: R): Promise<void>;
  dispose(): void;
}

export interface SinglePanel<R, H extends PanelHost<R>> {
  /** The serializer and the close-on-deactivate, for the extension's subscriptions. */
  disposables: vscode.Disposable[];
  /** Shows `request` in the open panel, else in a new one. */
  open(request: R): Promise<void>;
  /** The host of the open panel, if any. */
  current(): H | undefined;
}

/**
 * One webview panel of a kind at a time. A new panel replaces the old host; a panel VS Code restores
 * after a reload is adopted from the state its page saved, or closed when that state names nothing.
 */
export function singlePanel<R, H extends PanelHost<R>>(options: {
  viewType: string;
  title: string;
  extensionUri: vscode.Uri;
  /** The request a restored page's saved state asks for; undefined when there is nothing to restore. */
  restore(state: unknown): R | undefined;
  /** `restored`: VS Code brought the panel back after a reload; it must not take the front then. */
  create(panel: vscode.WebviewPanel, request: R, restored: boolean): H;
}): SinglePanel<R, H> {
  let current: H | undefined;
  const adopt = (panel: vscode.WebviewPanel, request: R, restored: boolean): void => {
    current?.dispose();
    const created = options.create(panel, request, restored);
    current = created;
    panel.onDidDispose(() => {
      if (current === created) current = undefined;
    });
  };
  return {
    disposables: [
      vscode.window.registerWebviewPanelSerializer(options.viewType, {
        async deserializeWebviewPanel(panel, state: unknown) {
          const request = options.restore(state);
          if (request === undefined) return panel.dispose();
          panel.webview.options = webviewOptions(options.extensionUri);
          adopt(panel, request, true);
        },
      }),
      { dispose: () => current?.dispose() },
    ],
    async open(request) {
      if (current) return current.open(request);
      const panel = vscode.window.createWebviewPanel(options.viewType, options.title, vscode.ViewColumn.Active, {
        ...webviewOptions(options.extensionUri),
        // The page is rebuilt from its saved state each time it is shown again; nothing is held while hidden.
        retainContextWhenHidden: false,
      });
      adopt(panel, request, false);
    },
    current: () => current,
  };
}
