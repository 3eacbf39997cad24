/** What both pages' bundles share: the element builder and the typed handle on the host. */

interface VsCodeApi<From, State> {
  postMessage(message: From): void;
  getState(): unknown;
  setState(state: State): void;
}
declare function acquireVsCodeApi<From, State>(): VsCodeApi<From, State>;

/** The host handle, typed by the page's messages and saved state; VS Code allows acquiring it once per page. */
export function hostApi<From, State>(): VsCodeApi<From, State> {
  return acquireVsCodeApi<From, State>();
}

/** Custom element tags are in the map too (@vscode-elements declares them), so their types come through. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<Record<string, string>> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) if (value !== undefined) el.setAttribute(name, value);
  el.append(...children);
  return el;
}
