#!/usr/bin/env bash
# Bootstrap an EC2 instance and start `mmdeepfake-train` on a dataset in S3.
#
# Use as the instance's user data, or run it by hand as root on a fresh Ubuntu 22.04/24.04 or
# Amazon Linux 2023 instance. Credentials come from the instance profile (attach a role with
# scripts/ec2/iam-policy.json): no keys are written to the instance.
#
# Settings (environment variables; edit the defaults below when using it as user data):
#   MMDF_BUCKET      dataset and outputs bucket (required)
#   MMDF_PREFIX      dataset prefix in the bucket            (default: dataset/)
#   MMDF_REPO        git URL of mmdeepfake                   (default: the public repository)
#   MMDF_REF         branch or tag to install                (default: main)
#   MMDF_CONFIG      preset or YAML path for --config        (default: default)
#   MMDF_NPROC       processes per node; >1 runs under torchrun (default: number of GPUs, or 1)
#   MMDF_ARGS        extra mmdeepfake-train flags, e.g. "--epochs 30 --fusion attention"
#   MMDF_RESUME      1 to continue the latest run from its checkpoint (default: 1; a fresh
#                    run starts when the bucket has no checkpoint yet)
#   AWS_REGION       region of the bucket (default: the instance's region, from IMDS)
set -euo pipefail

MMDF_BUCKET="${MMDF_BUCKET:?set MMDF_BUCKET to the S3 bucket holding dataset/}"
MMDF_PREFIX="${MMDF_PREFIX:-dataset/}"
MMDF_REPO="${MMDF_REPO:-https://github.com/mmdeepfake/mmdeepfake.git}"
MMDF_REF="${MMDF_REF:-main}"
MMDF_CONFIG="${MMDF_CONFIG:-default}"
MMDF_ARGS="${MMDF_ARGS:-}"
MMDF_RESUME="${MMDF_RESUME:-1}"
APP_DIR=/opt/mmdeepfake
LOG=/var/log/mmdeepfake-train.log

log() { echo "[bootstrap $(date -u +%H:%M:%S)] $*"; }

# --- system packages ---------------------------------------------------------------------------
if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq git python3-venv python3-pip libsndfile1 curl >/dev/null
elif command -v dnf >/dev/null; then
  dnf install -y -q git python3 python3-pip libsndfile curl
fi

# --- region from the instance metadata (IMDSv2) ------------------------------------------------
if [ -z "${AWS_REGION:-}" ]; then
  TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300" || true)
  AWS_REGION=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" \
    http://169.254.169.254/latest/meta-data/placement/region || echo us-east-1)
fi
export AWS_REGION AWS_DEFAULT_REGION="$AWS_REGION"

# --- code and virtual environment --------------------------------------------------------------
if [ ! -d "$APP_DIR/.git" ]; then
  git clone --depth 1 --branch "$MMDF_REF" "$MMDF_REPO" "$APP_DIR"
fi
cd "$APP_DIR"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  GPUS=$(nvidia-smi -L | wc -l)
  .venv/bin/pip install -q torch            # the CUDA build from PyPI
else
  GPUS=0
  .venv/bin/pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
.venv/bin/pip install -q -e ".[train]"
MMDF_NPROC="${MMDF_NPROC:-$(( GPUS > 0 ? GPUS : 1 ))}"

# --- credentials: the instance profile, checked before training starts --------------------------
.venv/bin/python - <<PY
import boto3, sys
ident = boto3.client("sts").get_caller_identity()
print("credentials from the instance profile:", ident["Arn"])
boto3.client("s3").head_bucket(Bucket="$MMDF_BUCKET")
PY

# --- resume when the bucket already holds a checkpoint -----------------------------------------
RESUME_FLAG=""
if [ "$MMDF_RESUME" = 1 ] && .venv/bin/python - <<PY
import sys
from mmdeepfake.data.storage import open_storage
keys = open_storage("s3://$MMDF_BUCKET/outputs/").list("")
sys.exit(0 if any(k.endswith("/models/checkpoints/latest.json") for k in keys) else 1)
PY
then
  RESUME_FLAG="--resume latest"
  log "a checkpoint exists: continuing the latest run"
fi

# --- train -------------------------------------------------------------------------------------
ARGS="--bucket $MMDF_BUCKET --prefix $MMDF_PREFIX --config $MMDF_CONFIG --no-progress $RESUME_FLAG $MMDF_ARGS"
if [ "$MMDF_NPROC" -gt 1 ]; then
  CMD=".venv/bin/torchrun --standalone --nproc-per-node $MMDF_NPROC -m mmdeepfake.cli.train $ARGS"
else
  CMD=".venv/bin/mmdeepfake-train $ARGS"
fi
log "starting: $CMD (log: $LOG)"
# nohup: the run survives the end of the user-data script; SIGTERM (a spot interruption, a
# shutdown) makes the trainer save a checkpoint before it exits.
nohup $CMD >>"$LOG" 2>&1 &
log "training started as process $!; follow it with: tail -f $LOG"
