#!/usr/bin/env bash
# System packages the test suite needs beyond Rust and Python: headless Chromium and its WebDriver, for the
# dashboard's end-to-end browser test (crates/dashboard/tests/browser.rs). Idempotent: does nothing when both
# binaries are already installed.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "ci-system-deps: chromium and chromedriver already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver
/usr/bin/chromium --version
/usr/bin/chromedriver --version
