#!/usr/bin/env bash
# Data-parallel rna-core training on MindSpore with msrun, on one node or several.
#
# usage: ascend/launch_msrun.sh [options] -- [rna-core train arguments]
#   --nodes N           nodes in the job (default 1)
#   --node-rank R       this node's rank, 0..N-1; node 0 hosts the scheduler (default 0)
#   --workers K         workers (devices) on this node (default 8)
#   --master-addr ADDR  node 0's address, reachable from every node (default 127.0.0.1)
#   --master-port PORT  scheduler port, free on node 0 (default 8118)
#   --log-dir DIR       one log per worker (default msrun_logs)
#   --device D          Ascend (default), GPU or CPU
#   --dry-run           print the commands this would run, run nothing
#
# Run the same command on every node, changing only --node-rank. Example, 2 nodes x 8 NPUs:
#   node 0: ascend/launch_msrun.sh --nodes 2 --node-rank 0 --master-addr 10.0.0.1 -- --recipe paper-imagenet-rna ...
#   node 1: ascend/launch_msrun.sh --nodes 2 --node-rank 1 --master-addr 10.0.0.1 -- --recipe paper-imagenet-rna ...
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nodes=1 node_rank=0 workers=8 master_addr=127.0.0.1 master_port=8118 log_dir=msrun_logs device=Ascend dry_run=0

usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
need() { [ "$#" -ge 2 ] || { echo "launch_msrun.sh: $1 needs a value" >&2; exit 2; }; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --nodes) need "$@"; nodes=$2; shift 2 ;;
        --node-rank) need "$@"; node_rank=$2; shift 2 ;;
        --workers) need "$@"; workers=$2; shift 2 ;;
        --master-addr) need "$@"; master_addr=$2; shift 2 ;;
        --master-port) need "$@"; master_port=$2; shift 2 ;;
        --log-dir) need "$@"; log_dir=$2; shift 2 ;;
        --device) need "$@"; device=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage 0 ;;
        --) shift; break ;;
        *) echo "launch_msrun.sh: unknown option $1 (train arguments go after --)" >&2; usage 2 ;;
    esac
done
for v in nodes node_rank workers master_port; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "launch_msrun.sh: --${v//_/-} must be an integer, got '${!v}'" >&2; exit 2; }
done
[ "$node_rank" -lt "$nodes" ] || { echo "launch_msrun.sh: --node-rank $node_rank outside 0..$((nodes - 1))" >&2; exit 2; }

cmd=(msrun "--worker_num=$((nodes * workers))" "--local_worker_num=$workers" "--master_addr=$master_addr"
     "--master_port=$master_port" "--node_rank=$node_rank" "--log_dir=$log_dir" "--join=True"
     "$here/run.py" train --backend mindspore --device "$device" --mode graph "$@")

if [ "$dry_run" -eq 1 ]; then
    [ "$device" = Ascend ] && echo ". $here/env.sh"
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
fi
if [ "$device" = Ascend ]; then
    # shellcheck source=SCRIPTDIR/env.sh
    . "$here/env.sh"
fi
# msrun starts each worker with the `python` on PATH: put first the interpreter that has rna-core
python_bin=$(command -v "${PYTHON:-python3}")
PATH="$(dirname "$python_bin"):$PATH"
export PATH
exec "${cmd[@]}"
