#!/usr/bin/env bash
# Print the path of a Python 3.10 interpreter: python3.10 on PATH, else pyenv's newest 3.10.
set -euo pipefail
is310() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; }
for cand in python3.10 python3 python; do
  if command -v "$cand" >/dev/null && is310 "$(command -v "$cand")"; then command -v "$cand"; exit 0; fi
done
root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
for dir in $(ls -d "$root"/versions/3.10.* 2>/dev/null | sort -V -r); do
  if is310 "$dir/bin/python"; then echo "$dir/bin/python"; exit 0; fi
done
echo "lensflow needs Python 3.10 (TFX 1.16 supports < 3.11) and found none on PATH or under pyenv ($root)." >&2
echo "Install it, e.g. 'pyenv install 3.10.13', then run make again." >&2
exit 1
