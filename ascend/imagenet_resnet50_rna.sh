#!/usr/bin/env bash
# The RNA paper's ImageNet run on one Ascend node with 8 NPUs: ResNet-50 with the BGN+GN space, global batch 512
# (64 per NPU), black-box adversarial training with PGD-2 at eps 4/255, 60 epochs, cosine lr from 0.02
# (recipe paper-imagenet-rna), starting from a pretrained BN ResNet-50 checkpoint as the authors did.
# ImageNet is read from the standard layout: DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG.
# A checkpoint is written every 500 steps; run the same command again to resume after a failure.
# RNA_PRECISION=bf16 (or fp16) trains with the recipe key precision (MindSpore's O2 scheme); default fp32.
# Each NPU's process decodes its shard with RNA_WORKERS mindspore.dataset workers (default 8: one worker serves
# some 400-470 images/s of random resized crops on an AMD EPYC core, benchmarks/loader_throughput.py).
#
# usage: ascend/imagenet_resnet50_rna.sh IMAGENET_DIR [PRETRAINED_CHECKPOINT] [--dry-run] [launch_msrun.sh options]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$#" -ge 1 ] || { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
data=$1
shift
init=()
if [ "$#" -ge 1 ] && [ "${1#--}" = "$1" ]; then
    init=(--set "init_checkpoint=$1")
    shift
fi
out=${RNA_OUT:-runs/imagenet-resnet50-rna}
resume=()
[ -f "$out/latest.json" ] && resume=(--resume)
exec "$here/launch_msrun.sh" --workers 8 "$@" -- --recipe paper-imagenet-rna --set "data_dir=$data" \
    --set checkpoint_every=500 --set "precision=${RNA_PRECISION:-fp32}" --set "workers=${RNA_WORKERS:-8}" \
    "${init[@]}" --out "$out" "${resume[@]}"
