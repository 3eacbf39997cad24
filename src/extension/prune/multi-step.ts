import * as vscode from 'vscode';

/** What a step returns when the user clicks Back (or presses Alt+Left) instead of answering. */
export const BACK = Symbol('back');
export type Back = typeof BACK;

/** A step's place in the flow: the title with its counter, and whether there is a step to go back to. */
export interface StepFrame {
  title: string;
  canGoBack: boolean;
}

/**
 * One step of a guided flow over the answers `A`: `applies` says whether the step is asked for the
 * answers so far (structured pruning has no allocation step, magnitude no calibration text), `run`
 * asks and records its answer. It returns false when the user dismissed the flow.
 */
export interface Step<A> {
  applies?: (answers: A) => boolean;
  run: (answers: A, frame: StepFrame) => Promise<boolean | Back>;
}

/**
 * Runs the steps in order with a counter in every title ("Prune stories260K (2/6)") and a Back button
 * from the second step on. The total is recounted at each step, since earlier answers decide which
 * later steps apply. Undefined when the user dismisses a step.
 */
export async function runSteps<A>(title: string, steps: readonly Step<A>[], answers: A): Promise<A | undefined> {
  const asked: number[] = [];
  let i = 0;
  while (i < steps.length) {
    const step = steps[i]!;
    const applicable = steps.filter((s) => !s.applies || s.applies(answers));
    if (!applicable.includes(step)) {
      i++;
      continue;
    }
    const result = await step.run(answers, { title: `${title} (${applicable.indexOf(step) + 1}/${applicable.length})`, canGoBack: asked.length > 0 });
    if (result === BACK) {
      i = asked.pop() ?? 0;
    } else if (result) {
      asked.push(i);
      i++;
    } else {
      return undefined;
    }
  }
  return answers;
}

export interface PickOptions<T extends vscode.QuickPickItem> {
  placeholder: string;
  items: readonly T[];
  active?: T;
  /** An item for typed text that matches no item (a sparsity of 0.55, say); shown first while it is typed. */
  custom?: (text: string) => T | undefined;
}

/** A quick pick step: the chosen item, BACK, or undefined when dismissed. */
export async function pickStep<T extends vscode.QuickPickItem>(frame: StepFrame, options: PickOptions<T>): Promise<T | Back | undefined> {
  const quickPick = vscode.window.createQuickPick<T>();
  quickPick.title = frame.title;
  quickPick.placeholder = options.placeholder;
  quickPick.items = options.items;
  quickPick.ignoreFocusOut = true;
  quickPick.matchOnDescription = true;
  if (frame.canGoBack) quickPick.buttons = [vscode.QuickInputButtons.Back];
  if (options.active) quickPick.activeItems = [options.active];
  try {
    return await new Promise<T | Back | undefined>((resolve) => {
      const { custom } = options;
      if (custom) {
        quickPick.onDidChangeValue((text) => {
          const typed = text.trim() === '' || options.items.some((item) => item.label === text.trim()) ? undefined : custom(text.trim());
          quickPick.items = typed ? [typed, ...options.items] : options.items;
        });
      }
      quickPick.onDidTriggerButton((button) => button === vscode.QuickInputButtons.Back && resolve(BACK));
      quickPick.onDidAccept(() => {
        const chosen = quickPick.selectedItems[0] ?? quickPick.activeItems[0];
        if (chosen) resolve(chosen);
      });
      quickPick.onDidHide(() => resolve(undefined));
      quickPick.show();
    });
  } finally {
    quickPick.dispose();
  }
}

export interface InputOptions {
  prompt: string;
  value: string;
  valueSelection?: [number, number];
  /** A message that blocks Enter, a warning that does not, or undefined when the text is fine. */
  validate: (text: string) => string | vscode.InputBoxValidationMessage | undefined;
}

/** An input box step: the accepted text, BACK, or undefined when dismissed. */
export async function inputStep(frame: StepFrame, options: InputOptions): Promise<string | Back | undefined> {
  const input = vscode.window.createInputBox();
  input.title = frame.title;
  input.prompt = options.prompt;
  input.value = options.value;
  if (options.valueSelection) input.valueSelection = options.valueSelection;
  input.ignoreFocusOut = true;
  if (frame.canGoBack) input.buttons = [vscode.QuickInputButtons.Back];
  const blocking = (m: string | vscode.InputBoxValidationMessage | undefined): boolean =>
    typeof m === 'string' || m?.severity === vscode.InputBoxValidationSeverity.Error;
  try {
    return await new Promise<string | Back | undefined>((resolve) => {
      input.validationMessage = options.validate(input.value);
      input.onDidChangeValue((text) => (input.validationMessage = options.validate(text)));
      input.onDidTriggerButton((button) => button === vscode.QuickInputButtons.Back && resolve(BACK));
      input.onDidAccept(() => {
        if (!blocking(options.validate(input.value))) resolve(input.value);
      });
      input.onDidHide(() => resolve(undefined));
      input.show();
    });
  } finally {
    input.dispose();
  }
}
