#!/usr/bin/env bash
# Regenerate docs/images/trace.png: run one trace across services A, B and C, load it into Arize Phoenix, screenshot.
# Needs: the project's .venv (make install), PostgreSQL on 127.0.0.1:5432, node/npm, Debian's chromium.
# Extra arguments go to make_trace.py (e.g. --endpoint http://127.0.0.1:4567 for LocalStack).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/out"
png="${PNG:-$root/docs/images/trace.png}"
port="${PHOENIX_PORT:-16006}"
mkdir -p "$out" "$(dirname "$png")"

# 1. one trace: A publishes, B handles (its callback task publishes), C handles; every span to out/spans.jsonl
"$root/.venv/bin/python" "$here/make_trace.py" --out "$out/spans.jsonl" "$@"
trace_id="$(head -1 "$out/spans.jsonl" | "$root/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["trace_id"])')"

# 2. the viewer (Phoenix, in its own venv) and the browser driver (playwright-core, in node_modules)
[ -x "$here/.venv/bin/phoenix" ] || { python3 -m venv "$here/.venv" && "$here/.venv/bin/pip" install -q -r "$here/requirements.txt"; }
[ -d "$here/node_modules/playwright-core" ] || (cd "$here" && npm ci --silent)
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null || { echo "install Debian's chromium (apt-get install chromium)" >&2; exit 1; }

# 3. a throw-away Phoenix: load the trace, screenshot it, stop it
work="$(mktemp -d)"
PHOENIX_WORKING_DIR="$work" PHOENIX_PORT="$port" PHOENIX_GRPC_PORT="$((port + 1))" \
  "$here/.venv/bin/phoenix" serve >"$out/phoenix.log" 2>&1 &
phoenix=$!
trap 'kill $phoenix 2>/dev/null; wait $phoenix 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 120); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 1; done
"$here/.venv/bin/python" "$here/send_otlp.py" "$out/spans.jsonl" --endpoint "http://127.0.0.1:$port/v1/traces"
sleep 2  # Phoenix inserts spans in the background
node "$here/render.mjs" "$trace_id" "$png" "http://127.0.0.1:$port"
echo "trace $trace_id -> $png"
