#!/usr/bin/env bash
# What `make dev` / `make test` need before they can install the rest, checked up front so a
# missing tool is one clear line instead of a build failure half-way through.
#
#   bash scripts/check-prerequisites.sh [DEBIAN_PACKAGE ...]
#
# Python >= 3.11 with venv (until .venv exists), Node >= 20 and npm, Go >= 1.26 (until
# livekit-server and the tests' .dockerignore oracle are built), and - when one of the given Debian packages is missing - apt-get
# and root or sudo to install it. Exit 0 when all is there; else one line per problem, exit 1.
# Only bash builtins and the tools being checked are used (the tests run it with fake PATHs).
set -uo pipefail

ROOT=${PREREQ_ROOT:-${0%/*}/..}
PYTHON=${PYTHON:-python3}
problems=0
missing() {
  printf 'missing prerequisite: %s\n' "$*" >&2
  problems=$((problems + 1))
}

# "1.26" >= "1.26"? (major.minor, numbers only)
at_least() {
  local have_major=$1 have_minor=$2 want_major=$3 want_minor=$4
  ((have_major > want_major || (have_major == want_major && have_minor >= want_minor)))
}

# --- Python >= 3.11, with venv (Debian: python3-venv) -----------------------------------------
if [[ ! -x $ROOT/.venv/bin/python ]]; then
  if ! command -v "$PYTHON" >/dev/null; then
    missing "Python >= 3.11 ($PYTHON not found; Debian 12: apt-get install python3 python3-venv)"
  else
    out=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2]); import venv, ensurepip' 2>/dev/null)
    rc=$?
    if [[ ! $out =~ ^([0-9]+)\.([0-9]+) ]]; then
      missing "Python >= 3.11 ($PYTHON did not report its version)"
    elif ! at_least "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" 3 11; then
      missing "Python >= 3.11 ($PYTHON is $out; set PYTHON=/path/to/python3.11 or newer)"
    elif ((rc != 0)); then
      missing "Python's venv module ($PYTHON $out cannot create a venv; Debian: apt-get install python3-venv)"
    fi
  fi
fi

# --- Node >= 20 and npm (the playground) -------------------------------------------------------
if ! command -v node >/dev/null; then
  missing "Node.js >= 20 (node not found; Debian 12: apt-get install nodejs npm gives 18, use Node 20 from NodeSource or nvm)"
else
  out=$(node --version 2>/dev/null)
  if [[ ! $out =~ ^v([0-9]+)\.([0-9]+) ]] || ! at_least "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" 20 0; then
    missing "Node.js >= 20 (node is ${out:-of unknown version})"
  fi
fi
if ! command -v npm >/dev/null; then
  missing "npm (comes with Node.js; Debian: apt-get install npm)"
fi

# --- Go >= 1.26, until the pinned livekit-server and the .dockerignore oracle are built ---------
version=""
if [[ -f $ROOT/devstack/livekit_server.py ]]; then
  while IFS= read -r line; do
    if [[ $line =~ ^LIVEKIT_SERVER_VERSION\ =\ \"(v[0-9.]+)\" ]]; then
      version=${BASH_REMATCH[1]}
    fi
  done <"$ROOT/devstack/livekit_server.py"
fi
if [[ -z $version || ! -x $ROOT/.cache/livekit-server/$version/livekit-server ||
  ! -x $ROOT/.cache/tools/dockerignore-oracle ]]; then
  if ! command -v go >/dev/null; then
    missing "Go >= 1.26 (go not found; it builds livekit-server and a test tool once; Debian 12 ships 1.19: install Go 1.26+ from its official release)"
  else
    out=$(go version 2>/dev/null)
    if [[ ! $out =~ go([0-9]+)\.([0-9]+) ]] || ! at_least "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" 1 26; then
      missing "Go >= 1.26 (found '${out:-nothing}'; livekit-server ${version:-} needs 1.26+)"
    fi
  fi
fi

# --- Debian packages: apt-get, and root or sudo, only when something is to be installed --------
absent=()
for pkg in "$@"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)
  [[ $status == *"install ok installed"* ]] || absent+=("$pkg")
done
if ((${#absent[@]})); then
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    missing "apt-get (to install ${absent[*]}; on another system install them with its package manager)"
  elif [[ $(id -u 2>/dev/null) != 0 ]] && ! command -v sudo >/dev/null; then
    missing "root or sudo (to apt-get install ${absent[*]})"
  fi
fi

if ((problems)); then
  printf 'install the above, then run the command again (README: Prerequisites)\n' >&2
  exit 1
fi
exit 0
