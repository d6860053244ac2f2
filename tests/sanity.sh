#!/usr/bin/env bash
# ansible-test sanity, offline. ansible-test bootstraps pip in the virtual environments it makes
# from a download host that is unreachable here; a stand-in saved where it looks for its cached
# get-pip script runs ensurepip and then `pip install` with the same arguments (pip reaches PyPI).
# ansible-test must run from a real path ending in ansible_collections/tme/migrations (it resolves
# symlinks): the files git lists (tracked, or new and not ignored) are copied into one.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
pip_version="$(python -c 'import ansible_test._internal.python_requirements as r, inspect, re; print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r.get_venv_packages)).group(1))')"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cat > "$cache" <<'PY'
# Offline stand-in for get-pip.py (tme.migrations tests/sanity.sh): ensurepip, then pip install.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
PY
fi
work="$(mktemp -d /tmp/tme-sanity-XXXXXX)"
trap 'rm -rf "$work"' EXIT
target="$work/ansible_collections/tme/migrations"
mkdir -p "$target"
cd "$repo"
git ls-files -z --cached --others --exclude-standard | grep -zv '^\.collections/' \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | xargs -0 cp --parents --no-dereference -t "$target"
cd "$target"
# ansible-test lists the files to test with git: a repository of the copy, outside this one.
git init -q && git add -A
ansible-test sanity --local --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$@"
