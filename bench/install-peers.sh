#!/bin/sh
# Install the benchmark peers that are missing (idempotent): rsync, rclone and zstd from
# Debian's archive, xvfb for the window figures. Root is needed only when one is missing.
set -e
need=""
command -v rsync >/dev/null 2>&1 || need="$need rsync"
command -v rclone >/dev/null 2>&1 || need="$need rclone"
command -v zstd >/dev/null 2>&1 || need="$need zstd"
command -v xvfb-run >/dev/null 2>&1 || need="$need xvfb xauth"
if [ -n "$need" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "bench: please install:$need (no apt-get here); the harness skips what is missing" >&2
        exit 0
    fi
    echo "bench: installing$need from the Debian archive" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
