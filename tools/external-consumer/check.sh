#!/usr/bin/env bash
# Builds tools/external-consumer against a tagged clone of this repository's committed HEAD, as a
# versioned dependency: fails if VidrdRuntime or VidrdClient carry unsafe build flags.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/vidrd"
git -C "$work/vidrd" tag 1.0.0
cp -R "$here/Package.swift" "$here/Sources" "$work/"
cd "$work"
VIDRD_PACKAGE_URL="file://$work/vidrd" swift build --product Consumer
VIDRD_PACKAGE_URL="file://$work/vidrd" swift run --skip-build Consumer
