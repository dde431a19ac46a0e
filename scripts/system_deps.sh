#!/usr/bin/env bash
# Set-up, not a test: install the Debian packages some tests use, when missing and when this
# machine can (root with apt-get). Tests never install anything; without these packages the
# tests that need them skip visibly, naming the package.
#   chromium               headless browser tests of the HTML report (components/report/tests)
#   dataset-fashion-mnist  the real idx files behind 'lensflow data fashion-mnist'
set -u
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || missing+=(dataset-fashion-mnist)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system packages missing (${missing[*]}): their tests will skip; install them as root with apt-get" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" >/tmp/lensflow-system-deps.log 2>&1 \
  || { apt-get update -q >>/tmp/lensflow-system-deps.log 2>&1 \
       && apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" >>/tmp/lensflow-system-deps.log 2>&1; } \
  || echo "apt-get could not install ${missing[*]} (see /tmp/lensflow-system-deps.log): their tests will skip" >&2
exit 0
