#!/usr/bin/env bash
# Run every benchmark with its defaults, one after the other (what `make bench` does).
# Each prints its own table; nothing here asserts a figure. Takes about 20 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
echo "== benchmarks/ingest.py (VDA 5050 state ingest, N = 1,000 and 5,000 robots)"
"$PY" benchmarks/ingest.py "$@"
echo
echo "== benchmarks/api_latency.py (control API latency at 1,000 requests/s)"
"$PY" benchmarks/api_latency.py
echo
echo "== benchmarks/api_latency.py --max-throughput (saturation)"
"$PY" benchmarks/api_latency.py --max-throughput
echo
echo "== benchmarks/dispatch_latency.py (mission created -> offer on MQTT; the API while the planner is busy)"
"$PY" benchmarks/dispatch_latency.py
echo
echo "== benchmarks/alert_delay.py (cause -> alert on the status view's event stream)"
"$PY" benchmarks/alert_delay.py
echo
echo "== benchmarks/planner.py (planner vs pyvroom on PDPTW; re-plan latency)"
"$PY" benchmarks/planner.py
echo
echo "== benchmarks/sim_strategies.py (optimise vs greedy offline, eval-85)"
"$PY" benchmarks/sim_strategies.py
