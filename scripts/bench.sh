#!/usr/bin/env bash
# The benchmark suite, in one command:
#
#     scripts/bench.sh                      # 1M rows, 5M-row large cases, 3 runs each
#     scripts/bench.sh --large-rows 0       # skip the 5M-row cases
#     scripts/bench.sh cursor               # only the cursor cases
#     scripts/bench.sh backfill             # only the change delay during a paced first sync
#
# Builds ebb and ebb-bench in release mode (ebb-bench with its S3 server), installs the peers (DuckDB and
# drt-core 1.2.1, with the keyed REST plugin) into a throwaway venv (never a dependency of ebb), starts
# PostgreSQL if it is down, and prints the results table (also written to
# target/bench/results.md). Extra arguments go to `ebb-bench suite`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Absolute: drt runs from a folder of its own.
venv="$(realpath -m "${BENCH_VENV:-target/bench/venv}")"
if [ ! -x "$venv/bin/drt" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet duckdb 'drt-core==1.2.1' psycopg2-binary
fi
# drt's REST destination with an upsert_key, so that drt can diff (connector/bench/drt_keyed).
# Built from a copy: pip leaves build folders next to the sources it builds.
if ! "$venv/bin/python" -c 'import drt_keyed_rest' 2>/dev/null; then
    rm -rf "$venv/src/drt_keyed" && mkdir -p "$venv/src" && cp -r connector/bench/drt_keyed "$venv/src/"
    "$venv/bin/pip" install --quiet "$venv/src/drt_keyed"
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi

cargo build --release --locked --bins --features bench-s3
mkdir -p target/bench
# `scripts/bench.sh cursor [ARGS]`: only the cursor cases (ebb-bench cursor).
command=suite
if [ "${1:-}" = cursor ] || [ "${1:-}" = backfill ]; then
    command=$1
    shift
fi
exec target/release/ebb-bench "$command" \
    --python "$venv/bin/python" --drt "$venv/bin/drt" \
    --out "target/bench/results-$command.md" "$@"
