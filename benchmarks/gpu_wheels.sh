#!/usr/bin/env bash
# Wheels of the pure-Python dependencies that the GPU image lacks, for Python 3.12, into .whl/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d .whl \
    fastai==2.8.12 fastcore fastprogress fastdownload fasttransform plum-dispatch beartype \
    bayesian-optimization==3.4.0 colorama
ls .whl
