// Offline stand-in for @vscode/test-electron's runTests(): the repo is the extension under development,
// out/e2e/suite/index.js its test entry, run in code-server's Node 24 extension host behind headless Chromium.
// node run-tests.js [--grep=PATTERN] [--env=JSON] [--timeout=SEC, default 1800]; env SCREENSHOT=file.png, VERBOSE=1, KEEP=1.
// Exit status: 0 all tests passed, 1 failures, 2 timeout, 3 the harness itself failed.
const path = require('node:path');
const util = require('node:util');
const { REPO, log, makeTemp, makeWorkspace, startCodeServer, workbenchUrl, launchBrowser, cleanup } = require('./lib');

const arg = (k, d) => (process.argv.find((a) => a.startsWith(`--${k}=`)) || '').slice(k.length + 3) || d;
const tests = path.join(REPO, 'out/e2e/suite/index.js');
// The workbench logs these offline failures on every start; they say nothing about the extension.
const noise = /^(Resolv|Creating a socket|\[reconnection|Updating additional|\[Service Worker|\[AgentHost|\[AccountPolicyGate|Creation of workbench|Timed out waiting for auth|\[ChatModelSelection)|ENOTFOUND/;

async function main() {
  const tmp = makeTemp();
  let server;
  let browser;
  try {
    const folder = makeWorkspace(tmp);
    // A built workbench ignores the ?payload= test parameters unless the smoke-test driver is on.
    server = await startCodeServer(tmp, { args: ['--vscode-option', 'enable-smoke-test-driver'] });
    const remote = (p) => `vscode-remote://${new URL(server.base).host}${p}`;
    const extensionEnv = {
      ORT_DISABLE_TELEMETRY: '1',
      ...(arg('grep') ? { PRUNELENS_E2E_GREP: arg('grep') } : {}),
      ...JSON.parse(arg('env', '{}')),
    };
    const payload = [
      ['extensionDevelopmentPath', remote(REPO)],
      ['extensionTestsPath', remote(tests)],
      ['extensionEnvironment', JSON.stringify(extensionEnv)],
    ];
    let page;
    ({ browser, page } = await launchBrowser(tmp));
    let finish;
    // A safety net for a run that would never end, far above the suite's work under load.
    const done = new Promise((r) => { finish = r; setTimeout(() => r('timeout'), +arg('timeout', 1800) * 1000).unref(); });
    // The workbench forwards every console line, the extension host's too (mocha's reporter), and the
    // tests' exit code to these two functions, as @vscode/test-web does.
    await page.exposeFunction('codeAutomationLog', (type, args) => {
      const line = util.format(...args);
      if (process.env.VERBOSE || !noise.test(line)) (type === 'error' ? console.error : console.log)(line);
    });
    await page.exposeFunction('codeAutomationExit', (code) => finish(code));
    // Loading the workbench takes seconds on a quiet machine and minutes on a loaded one; the run's own timeout bounds it.
    await page.goto(workbenchUrl(server.base, folder, payload), { timeout: 0 });
    log('workbench loaded, running tests');
    const code = await done;
    log(`tests finished: ${code}`);
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT }).catch(() => {});
    return code === 'timeout' ? 2 : code;
  } finally {
    await browser?.close().catch(() => {});
    await server?.stop();
    cleanup(tmp);
  }
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(3); });
