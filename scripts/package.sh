#!/usr/bin/env bash
# npm run package: a VSIX for the platform this runs on, carrying only that platform's ONNX Runtime
# binaries. vsce comes from the end-to-end tool cache (scripts/e2e/setup.sh installs it offline).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/e2e/env.sh
bash scripts/e2e/setup.sh >&2
npm run -s build
case "$(node -p 'process.platform + "-" + process.arch')" in
  linux-x64) target=linux-x64 ;;
  *) echo "package: this build packages linux-x64 only (see README, Packaging)" >&2; exit 2 ;;
esac
out=prunelens-$target-$(node -p 'require("./package.json").version').vsix
"$NODE24" "$E2E_TOOLS/node_modules/@vscode/vsce/vsce" package --target "$target" --allow-missing-repository -o "$out"
echo "$out"
