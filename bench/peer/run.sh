#!/usr/bin/env bash
# Serves the peer with uvicorn (uvloop, httptools) on 127.0.0.1.
#   usage: run.sh PORT WORKERS
# Environment: DATABASE_URL, SECRET_KEY (see app.py); PYTHON, the interpreter
# with requirements.txt installed (default python3).
set -euo pipefail
cd "$(dirname "$0")"
PORT=${1:?usage: run.sh PORT WORKERS}
WORKERS=${2:?usage: run.sh PORT WORKERS}
PY=${PYTHON:-python3}
# Tables once, before the workers start, so that they do not race to create them.
"$PY" -c 'import asyncio, app; asyncio.run(app.init_db())'
exec "$PY" -m uvicorn app:app --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" \
    --loop uvloop --http httptools --no-access-log --log-level warning
