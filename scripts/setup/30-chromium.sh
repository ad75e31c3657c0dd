#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the web console's browser test
# (crates/tidelake/tests/it/console.rs drives /usr/bin/chromium through
# /usr/bin/chromedriver). Idempotent: nothing happens when both exist.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "30-chromium: no apt-get; install chromium and chromium-driver by hand" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
