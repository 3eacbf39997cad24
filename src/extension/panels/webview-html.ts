import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

/** The only folders a page may load from: the built webview bundles and their stylesheets. */
export function webviewRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')];
}

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return { enableScripts: true, localResourceRoots: webviewRoots(extensionUri) };
}

/** What every page shares (type, colours, the controls, progress and error lines); each page's own sheet follows it. */
const BASE_STYLE = 'panel-base.css';

/**
 * The page shell; the bundle builds everything else. Scripts run only with this load's nonce. Styles
 * come only from the extension's files: @vscode-elements (Lit) adopts constructed stylesheets and sets
 * element styles through the CSSOM (`.style=` bindings), and the page sets its bar widths the same way;
 * style-src governs none of these, so no 'unsafe-inline' (checked in Chromium: the page renders with no
 * violation). Lit would fall back to <style> tags only without adoptedStyleSheets, which every VS Code
 * Chromium has. No codicons are used, so no font is loaded; font-src stays the extension's own files.
 */
export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, title: string, page: { script: string; style: string } = { script: 'main.js', style: 'allocation-panel.css' }): string {
  const nonce = randomBytes(16).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', page.script));
  const [base, style] = [BASE_STYLE, page.style].map((file) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', file)));
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${webview.cspSource}`,
    `font-src ${webview.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${base.toString()}">
<link rel="stylesheet" href="${style.toString()}">
<title>${escapeHtml(title)}</title>
</head>
<body>
<main id="app" aria-busy="true"><p>Loading…</p></main>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
