#!/bin/sh
# Print the path of a headless Chromium, apt-installing it first when missing (CI runs as root on Debian).
# Fails loudly, never silently: the report test needs a real browser to decode the report's images.
set -eu
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: chromium is not installed and cannot be apt-installed here (need root and apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run to finish instead of failing on its lock.
apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >&2
command -v chromium
