#!/usr/bin/env bash
# Set-up, not a test: install the Debian packages some tests use, when missing and when this
# machine can (root with apt-get). Tests never install anything; without these packages the
# tests that need them skip visibly, naming the package.
#   chromium               headless browser tests of the HTML report (components/report/tests)
#   dataset-fashion-mnist  the real idx files behind 'lensflow data fashion-mnist'
#   fonts-noto-color-emoji, unicode-data  Noto's emoji bitmaps and the emoji labels behind
#                          'lensflow data emoji'; with them, npm's @lobehub/fluent-emoji-3d@1.1.0
#                          (npm pack, unpacked under /usr/share/datasets/emoji/fluent-emoji-3d)
set -u
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || missing+=(dataset-fashion-mnist)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
[ -e /usr/share/unicode/emoji/emoji-test.txt ] || missing+=(unicode-data)
fluent_dir=/usr/share/datasets/emoji/fluent-emoji-3d
fluent_pkg=@lobehub/fluent-emoji-3d@1.1.0
if [ ! -d "$fluent_dir/package/assets" ]; then
  if command -v npm >/dev/null && mkdir -p "$fluent_dir" 2>/dev/null; then
    echo "fetching npm $fluent_pkg into $fluent_dir"
    tgz=$(cd "$fluent_dir/.." && npm pack --silent "$fluent_pkg" 2>>/tmp/lensflow-system-deps.log) \
      && tar -xzf "$fluent_dir/../$tgz" -C "$fluent_dir" \
      || echo "npm could not fetch $fluent_pkg (see /tmp/lensflow-system-deps.log): the emoji tests will skip" >&2
  else
    echo "npm or $fluent_dir not available: the emoji tests will skip" >&2
  fi
fi
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
