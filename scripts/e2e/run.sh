#!/usr/bin/env bash
# npm run test:e2e [-- --grep=PATTERN]: the extension's end-to-end tests in a real VS Code workbench.
#   Then the UI flows: the Explorer, the palette and the guided flow driven by clicks and typing (ui-flows.js),
#   and the UI smoke: the packaged extension's panel, diff, runs and reload, photographed in both themes (ui-smoke.js).
# bash scripts/e2e/run.sh flows [SCREENSHOT_DIR]: only the UI flows (env FLOWS=REGEX picks some).
# npm run smoke [-- SCREENSHOT_DIR]: the packaged extension in a workbench driven like a person would, with screenshots.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/e2e/env.sh
mode=test
if [[ ${1:-} == smoke || ${1:-} == flows ]]; then mode=$1; shift; fi
bash scripts/e2e/setup.sh
s=$SECONDS
npm run -s build
echo "e2e: extension built in $(( SECONDS - s ))s" >&2
if [[ $mode == smoke ]]; then exec "$NODE24" scripts/e2e/ui-smoke.js "$@"; fi
if [[ $mode == flows ]]; then exec "$NODE24" scripts/e2e/ui-flows.js "$@"; fi
node scripts/e2e/build.mjs
s=$SECONDS
rc=0
"$NODE24" scripts/e2e/run-tests.js "$@" || rc=$?
echo "e2e: API suite finished in $(( SECONDS - s ))s (exit $rc)" >&2
# A --grep run is for the API suite alone.
if [[ " $* " != *" --grep="* ]]; then
  s=$SECONDS
  "$NODE24" scripts/e2e/ui-flows.js || rc=$((rc ? rc : $?))
  echo "e2e: UI flows finished in $(( SECONDS - s ))s" >&2
  s=$SECONDS
  "$NODE24" scripts/e2e/ui-smoke.js || rc=$((rc ? rc : $?))
  echo "e2e: UI smoke finished in $(( SECONDS - s ))s" >&2
fi
exit $rc
