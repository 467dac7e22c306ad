#!/usr/bin/env bash
set -euo pipefail
SRC="${1:?project folder}"
DEST="${2:?backup folder}"
name="$(basename "$(cd "$SRC" && pwd)")"
stamp="$(date +%Y%m%d-%H%M)"

# generated output only; both paths are relative to the project
(cd "$SRC" && rm -rf ./build ./dist)

mkdir -p "$DEST"
tar --exclude=node_modules --exclude=.venv --exclude=.git \
    -czf "${DEST:?}/${name}-${stamp}.tar.gz" -C "$SRC" .
echo "wrote ${DEST}/${name}-${stamp}.tar.gz"
