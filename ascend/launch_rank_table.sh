#!/usr/bin/env bash
# Data-parallel rna-core training on Ascend clusters that still use a rank table (RANK_TABLE_FILE, HCCL):
# one worker per device of this server, each with RANK_TABLE_FILE, RANK_SIZE, RANK_ID and DEVICE_ID set.
#
# usage: ascend/launch_rank_table.sh --rank-table FILE [options] -- [rna-core train arguments]
#   --rank-table FILE   the hccl rank table (version 1.0 JSON: server_list[].device[].device_id / rank_id)
#   --server-id ID      this server's server_id in the table (default: the only server, else required)
#   --log-dir DIR       one log per rank (default rank_table_logs)
#   --dry-run           print the commands this would run, run nothing
#
# Run it on every server of the table; it waits for its workers and fails if one of them fails.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
table="" server_id="" log_dir=rank_table_logs dry_run=0
python_bin=$(command -v "${PYTHON:-python3}")

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
need() { [ "$#" -ge 2 ] || { echo "launch_rank_table.sh: $1 needs a value" >&2; exit 2; }; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --rank-table) need "$@"; table=$2; shift 2 ;;
        --server-id) need "$@"; server_id=$2; shift 2 ;;
        --log-dir) need "$@"; log_dir=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage 0 ;;
        --) shift; break ;;
        *) echo "launch_rank_table.sh: unknown option $1 (train arguments go after --)" >&2; usage 2 ;;
    esac
done
[ -n "$table" ] || { echo "launch_rank_table.sh: --rank-table FILE is required" >&2; exit 2; }
[ -f "$table" ] || { echo "launch_rank_table.sh: rank table $table not found" >&2; exit 2; }
table=$(cd "$(dirname "$table")" && pwd)/$(basename "$table")

# "RANK_SIZE DEVICE_ID RANK_ID" lines for this server, checked and parsed by Python (no jq on most nodes)
devices=$("$python_bin" - "$table" "$server_id" <<'PY'
import json, sys
path, server = sys.argv[1], sys.argv[2]
try:
    t = json.load(open(path))
    servers = t["server_list"]
    size = sum(len(s["device"]) for s in servers)
except (OSError, ValueError, KeyError, TypeError) as e:
    sys.exit(f"launch_rank_table.sh: {path} is not a rank table (server_list[].device[]): {e!r}")
if not server:
    if len(servers) != 1:
        sys.exit(f"launch_rank_table.sh: {len(servers)} servers in {path}: pass --server-id")
    server = servers[0]["server_id"]
mine = [s for s in servers if s["server_id"] == server]
if not mine:
    sys.exit(f"launch_rank_table.sh: server {server} not in {path}")
for d in mine[0]["device"]:
    print(size, d["device_id"], d["rank_id"])
PY
)

if [ "$dry_run" -eq 1 ]; then
    echo ". $here/env.sh"
else
    # shellcheck source=SCRIPTDIR/env.sh
    . "$here/env.sh"
fi
pids=()
while read -r size device_id rank_id; do
    env_vars=(RANK_TABLE_FILE="$table" RANK_SIZE="$size" RANK_ID="$rank_id" DEVICE_ID="$device_id")
    cmd=("$python_bin" "$here/run.py" train --backend mindspore --device Ascend --mode graph "$@")
    if [ "$dry_run" -eq 1 ]; then
        printf '%q ' env "${env_vars[@]}" "${cmd[@]}"
        printf '> %q 2>&1 &\n' "$log_dir/rank_$rank_id.log"
        continue
    fi
    mkdir -p "$log_dir"
    env "${env_vars[@]}" "${cmd[@]}" > "$log_dir/rank_$rank_id.log" 2>&1 &
    pids+=("$!")
done <<< "$devices"
[ "$dry_run" -eq 1 ] && exit 0
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
[ "$status" -eq 0 ] || echo "launch_rank_table.sh: a worker failed (exit $status); see $log_dir/" >&2
exit "$status"
