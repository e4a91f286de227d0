#!/usr/bin/env bash
# Compressor benchmark (see compressors.py): builds qdb-train, installs
# python3-faiss when missing (as root), runs every set in ../shared/data.
# usage: test/bench/compressors.sh [--sample N] [SET ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! /usr/bin/python3 -c 'import faiss, numpy' 2>/dev/null; then
	[ "$(id -u)" = 0 ] || { echo "install python3-faiss and python3-numpy first" >&2; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-faiss python3-numpy >/dev/null
fi
make -s -C trainer qdb-train
exec /usr/bin/python3 test/bench/compressors.py "$@"
