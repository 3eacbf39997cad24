// npm run test:e2e:electron: the same suite under @vscode/test-electron, the usual way for a developer
// with internet (it downloads a VS Code build). CI and offline machines use run-tests.js instead.
const path = require('node:path');
const { runTests } = require('@vscode/test-electron');
const { REPO, makeTemp, makeWorkspace } = require('./lib.js');

(async () => {
  const workspace = makeWorkspace(makeTemp());
  await runTests({
    extensionDevelopmentPath: REPO,
    extensionTestsPath: path.join(REPO, 'out/e2e/suite/index.js'),
    extensionTestsEnv: { ORT_DISABLE_TELEMETRY: '1' },
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
  });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
