#!/usr/bin/env bash
# Start a throw-away Galaxy (PyPI galaxy, sqlite, no conda, 127.0.0.1) with the tools of galaxy/,
# run every tool's <tests> and the workflow's test on it, take a headless Chromium screenshot and
# DOM dump of the impute tool's form, stop Galaxy. Results go to OUTDIR:
#   tools.json (galaxy-tool-test), workflow.json (planemo), impute_form.png, impute_form.html
# Usage: tests/galaxy_server.sh OUTDIR   (GX_VENV: Galaxy's virtualenv; TOOL_PATH: folder of the
# deepimpute executables, put first on the tools' PATH). Exits non-zero if Galaxy cannot start.
set -euo pipefail
OUT=$(realpath "${1:?usage: $0 OUTDIR}")
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
GX_VENV=$(realpath "${GX_VENV:?set GX_VENV to a virtualenv with galaxy and planemo}")
TOOL_PATH=$(realpath "${TOOL_PATH:?set TOOL_PATH to the folder holding deepimpute-* executables}")
TOOL_DIR=$REPO/galaxy
WORK=$(mktemp -d "${TMPDIR:-/tmp}/galaxy.XXXXXX")
PORT=$("$GX_VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
BOOT_KEY=$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$WORK/data" "$OUT"

cat > "$WORK/tool_conf.xml" <<XML
<?xml version="1.0"?>
<toolbox>
  <section id="deepimpute" name="DeepImpute">
    <tool_dir dir="$TOOL_DIR"/>
  </section>
</toolbox>
XML
echo '<?xml version="1.0"?><tables/>' > "$WORK/tool_data_table_conf.xml"
cat > "$WORK/galaxy.yml" <<YML
galaxy:
  data_dir: $WORK/data
  database_connection: sqlite:///$WORK/data/universe.sqlite?isolation_level=IMMEDIATE
  database_auto_migrate: true
  tool_config_file: $WORK/tool_conf.xml
  tool_data_table_config_path: $WORK/tool_data_table_conf.xml
  tool_dependency_dir: $WORK/data/deps
  conda_auto_init: false
  conda_auto_install: false
  dependency_resolvers:
    - type: galaxy_packages
  enable_celery_tasks: false
  id_secret: $(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  admin_users: admin@example.org
  bootstrap_admin_api_key: $BOOT_KEY
  allow_path_paste: true
  galaxy_infrastructure_url: $URL
  job_config:
    runners:
      local:
        load: galaxy.jobs.runners.local:LocalJobRunner
        workers: 2
    execution:
      default: local
      environments:
        local:
          runner: local
          env:
            # tools run from the project's executables, outside Galaxy's own virtualenv
            - execute: '[ "\$_use_framework_galaxy" = True ] || GALAXY_VIRTUAL_ENV=None; export PATH="$TOOL_PATH:\$PATH"'
YML

GX_PID=
cleanup() {
  if [ -n "$GX_PID" ] && kill -0 "$GX_PID" 2>/dev/null; then
    kill "$GX_PID"
    for _ in $(seq 30); do kill -0 "$GX_PID" 2>/dev/null || break; sleep 1; done
    kill -9 "$GX_PID" 2>/dev/null || true
  fi
  cp "$WORK/galaxy.log" "$OUT/galaxy.log" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

started=$SECONDS
VIRTUAL_ENV="$GX_VENV" PATH="$GX_VENV/bin:$PATH" PYTHONWARNINGS=ignore TMPDIR="$WORK" \
  "$GX_VENV/bin/galaxy-web" -c "$WORK/galaxy.yml" -b "127.0.0.1:$PORT" > "$WORK/galaxy.log" 2>&1 &
GX_PID=$!
until curl -sf "$URL/api/version" > /dev/null; do
  kill -0 "$GX_PID" 2>/dev/null || { echo "Galaxy died:"; tail -50 "$WORK/galaxy.log"; exit 1; }
  [ $((SECONDS - started)) -lt 300 ] || { echo "Galaxy did not start in 300 s"; tail -50 "$WORK/galaxy.log"; exit 1; }
  sleep 1
done
echo "Galaxy $(curl -s "$URL/api/version") up on $URL after $((SECONDS - started)) s"

user_id=$(curl -sf -X POST "$URL/api/users?key=$BOOT_KEY" -H 'Content-Type: application/json' \
  -d '{"username":"admin","email":"admin@example.org","password":"admin-password-123"}' \
  | "$GX_VENV/bin/python" -c 'import sys, json; print(json.load(sys.stdin)["id"])')
USER_KEY=$(curl -sf -X POST "$URL/api/users/$user_id/api_key?key=$BOOT_KEY" | tr -d '"')

echo "== tool tests"
TMPDIR="$WORK" "$GX_VENV/bin/galaxy-tool-test" -u "$URL" -k "$USER_KEY" -a "$BOOT_KEY" \
  --test-data "$TOOL_DIR/test-data" --parallel-tests 1 -j "$OUT/tools.json" > "$OUT/tools.log" 2>&1 || true

echo "== workflow test"
(cd "$TOOL_DIR/workflows" && TMPDIR="$WORK" "$GX_VENV/bin/planemo" --directory "$WORK/planemo" test \
  --engine external_galaxy --galaxy_url "$URL" --galaxy_admin_key "$BOOT_KEY" --galaxy_user_key "$USER_KEY" \
  --test_output_json "$OUT/workflow.json" --test_output "$OUT/workflow.html" \
  deepimpute-evaluate.ga deepimpute-impute.ga > "$OUT/workflow.log" 2>&1) || true

echo "== the impute tool's form in the web interface"
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
        --disable-sync --no-first-run --hide-scrollbars --window-size=1280,900 --virtual-time-budget=25000)
"${chrome[@]}" --user-data-dir="$WORK/chrome1" --screenshot="$OUT/impute_form.png" \
  "$URL/?tool_id=deepimpute_impute" > /dev/null 2>&1 || true
"${chrome[@]}" --user-data-dir="$WORK/chrome2" --dump-dom "$URL/?tool_id=deepimpute_impute" \
  > "$OUT/impute_form.html" 2> /dev/null || true
echo "done after $((SECONDS - started)) s"
