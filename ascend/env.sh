# shellcheck shell=bash
# The environment for rna-core on Ascend. Source it on every node before launching:
#
#     . ascend/env.sh
#
# 1. CANN: the toolkit's own set_env.sh (ASCEND_HOME defaults to /usr/local/Ascend).
# 2. Operator precision, read by rna-core's MindSpore backend (RNA_ASCEND_PRECISION_MODE):
#    must_keep_origin_dtype (default here) computes in the model's float32, the precision that the parity tests
#    hold torch and MindSpore to; use it for parity-sensitive runs and for reproducing published numbers.
#    For speed, allow_fp32_to_fp16 runs matrix operators (convolutions, matmuls) in float16 and
#    allow_mix_precision_bf16 (Atlas A2) lets CANN pick bf16 where it judges it safe; expect several-fold faster
#    convolutions and numbers that no longer match the CPU/GPU backends to 1e-4. Atlas training products
#    (910A) default to force_fp16 when nothing is set, which is why this file sets the mode explicitly.
# 3. Logging and compilation cache.

ASCEND_HOME=${ASCEND_HOME:-/usr/local/Ascend}
if [ -f "$ASCEND_HOME/ascend-toolkit/set_env.sh" ]; then
    # shellcheck source=/dev/null
    . "$ASCEND_HOME/ascend-toolkit/set_env.sh"
else
    echo "ascend/env.sh: no CANN toolkit at $ASCEND_HOME/ascend-toolkit (set ASCEND_HOME)" >&2
fi
export ASCEND_HOME
export RNA_ASCEND_PRECISION_MODE=${RNA_ASCEND_PRECISION_MODE:-must_keep_origin_dtype}
export GLOG_v=${GLOG_v:-2}                                   # MindSpore logs: warnings and errors
export HCCL_CONNECT_TIMEOUT=${HCCL_CONNECT_TIMEOUT:-1200}     # seconds to wait for every rank to join
export MS_COMPILER_CACHE_ENABLE=${MS_COMPILER_CACHE_ENABLE:-1}  # reuse compiled graphs across runs
export MS_COMPILER_CACHE_PATH=${MS_COMPILER_CACHE_PATH:-$HOME/.cache/rna-core/ms-graphs}
