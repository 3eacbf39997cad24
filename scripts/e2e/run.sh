#!/usr/bin/env bash
# npm run test:e2e [-- --grep=PATTERN]: the extension's end-to-end tests in a real VS Code workbench.
# npm run smoke [-- SCREENSHOT_DIR]: the packaged extension in a workbench driven like a person would, with screenshots.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/e2e/env.sh
mode=test
if [[ ${1:-} == smoke ]]; then mode=smoke; shift; fi
bash scripts/e2e/setup.sh
s=$SECONDS
npm run -s build
echo "e2e: extension built in $(( SECONDS - s ))s" >&2
if [[ $mode == smoke ]]; then exec "$NODE24" scripts/e2e/ui-smoke.js "$@"; fi
node scripts/e2e/build.mjs
exec "$NODE24" scripts/e2e/run-tests.js "$@"
