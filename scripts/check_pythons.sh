#!/usr/bin/env bash
# The Pythons pyproject.toml claims (3.10 to 3.13), each checked two ways:
#   1. the `test` extra resolves on it (pip's resolver, nothing downloaded but metadata);
#   2. the package builds from source on it and the fast core tests pass.
# The full suite runs on the CI's own Python (.ci/run). A Python that is not installed
# on this machine is reported and skipped, never counted as passed.
#
#   scripts/check_pythons.sh               # every claimed version found under pyenv
#   scripts/check_pythons.sh 3.10 3.13     # only these
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then versions=(3.10 3.11 3.12 3.13); fi
root="${PYENV_ROOT:-$HOME/.pyenv}/versions"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for version in "${versions[@]}"; do
    python="$(ls -d "$root/$version".*/bin/python3 2>/dev/null | sort -V | tail -1 || true)"
    if [ -z "$python" ] && command -v "python$version" >/dev/null; then python="$(command -v "python$version")"; fi
    if [ -z "$python" ]; then
        echo "python $version: not installed here, skipped"
        continue
    fi
    echo "python $version: $("$python" --version)"
    venv="$work/venv-$version"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    if ! "$venv/bin/pip" install -q --dry-run -e '.[test]' >"$work/resolve-$version.log" 2>&1; then
        echo "  the test extra does not resolve:"; tail -5 "$work/resolve-$version.log"; status=1; continue
    fi
    echo "  the test extra resolves"
    # A copy of the sources, so that the build on this Python leaves the checkout alone.
    git ls-files -z | tar --null -T - -cf - | (mkdir -p "$work/src-$version" && tar -xf - -C "$work/src-$version")
    if ! "$venv/bin/pip" install -q "$work/src-$version" pytest hypothesis scipy >"$work/build-$version.log" 2>&1; then
        echo "  build failed:"; tail -20 "$work/build-$version.log"; status=1; continue
    fi
    # Run the installed package (not the sources beside the tests).
    if (cd "$work/src-$version" && rm -rf bytepiece && "$venv/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider \
            tests/core tests/api/test_tokenizer.py tests/api/test_lattice_research.py 2>&1 | tail -3); then
        echo "  fast core tests pass"
    else
        status=1
    fi
done
exit $status
