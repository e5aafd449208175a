#!/usr/bin/env bash
# Wheels of the pure-Python packages the suite imports that the GPU image lacks, for Python 3.12, into .whl/
# (git-ignored). The versions are those of pyproject.toml's pins and of the test environment they resolved to.
# fastprogress imports python-fasthtml, which imports starlette, python-multipart and itsdangerous.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d .whl \
    fastai==2.8.12 fastcore==2.2.41 fastprogress==1.1.6 fastdownload==0.0.8 fasttransform==0.0.5 \
    plum-dispatch==2.9.0 beartype==0.23.1 python-fasthtml==0.14.14 starlette==1.10.0 python-multipart==0.0.34 \
    itsdangerous==2.2.0 bayesian-optimization==3.4.0 pytest-xdist==3.8.0 execnet==2.1.2
ls .whl
