#!/usr/bin/env bash
# LJSpeech recipe for waveflow: download -> prepare -> train -> export -> vocode the test set -> evaluate.
#
#   recipes/ljspeech/run.sh                                  # everything, one device, NVIDIA's set-up
#   recipes/ljspeech/run.sh --stage 2 --stop-stage 2 --ngpu 8   # only training, 8 GPUs (accelerate launch)
#   recipes/ljspeech/run.sh --stage 1 --data-root my_voice/ --exp exp/my_voice --config configs/waveglow-small.yaml
#
# Stages (inclusive range --stage..--stop-stage):
#   0 download  the official LJSpeech-1.1 tarball, sha256-verified, unpacked into --data-root
#   1 prepare   scan the data, make the stable hash split (EXP/train/split/{train,val,test}.txt)
#   2 train     waveflow train (single process) or accelerate launch -m waveflow train (--ngpu N > 1)
#   3 export    EXP/model.pt: the trained model in waveflow's own format, named
#   4 vocode    mels of the test split (waveflow mel) -> audio (waveflow vocode) in EXP/test/
#   5 evaluate  copy-synthesis metrics + test NLL on the test split (waveflow eval) -> EXP/eval.json
#
# Training resumes by itself: re-running stage 2 continues from the latest state in EXP/train/checkpoints.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

stage=0
stop_stage=5
data_root="$here/data/LJSpeech-1.1"     # an LJSpeech folder, a folder of audio files or a file list
download_dir="$here/downloads"
exp="$here/exp/waveglow-256"
config="$repo/configs/waveglow-256.yaml"
ngpu=1                                   # > 1: accelerate launch --multi_gpu --num_processes ngpu
train_args=""                            # extra key=value overrides, e.g. "train.max_steps=1000 train.batch_size=8"
name="ljspeech"                          # voice name stored in the exported model
device="auto"                            # for vocode/eval: auto, cpu, cuda, cuda:1
vocode_args=""                           # extra options for waveflow vocode, e.g. "--dtype float16 --denoise 0.02"
eval_args=""                             # extra options for waveflow eval, e.g. "--limit 100 --no-f0"
waveflow="${WAVEFLOW:-python -m waveflow}"

LJSPEECH_URL="https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
LJSPEECH_SHA256="be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage="$2"; shift 2 ;;
    --stop-stage) stop_stage="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    --download-dir) download_dir="$2"; shift 2 ;;
    --exp) exp="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --ngpu) ngpu="$2"; shift 2 ;;
    --train-args) train_args="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --vocode-args) vocode_args="$2"; shift 2 ;;
    --eval-args) eval_args="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

run_dir="$exp/train"
# shellcheck disable=SC2206
overrides=("data.root=$data_root" "train.run_dir=$run_dir" $train_args)

if run_stage 0; then
  log "stage 0: download LJSpeech-1.1 (2.6 GB) into $(dirname "$data_root")"
  mkdir -p "$download_dir" "$(dirname "$data_root")"
  tarball="$download_dir/LJSpeech-1.1.tar.bz2"
  if [ ! -f "$tarball" ]; then
    if command -v wget >/dev/null; then wget -c -O "$tarball.part" "$LJSPEECH_URL"
    else curl -L -C - -o "$tarball.part" "$LJSPEECH_URL"; fi
    mv "$tarball.part" "$tarball"
  fi
  log "verifying sha256"
  echo "$LJSPEECH_SHA256  $tarball" | sha256sum -c - || {
    echo "run.sh: $tarball does not match the published checksum; delete it and run stage 0 again" >&2; exit 1; }
  if [ ! -f "$data_root/metadata.csv" ]; then
    tar -xjf "$tarball" -C "$(dirname "$data_root")"
    [ "$(basename "$data_root")" = "LJSpeech-1.1" ] || mv "$(dirname "$data_root")/LJSpeech-1.1" "$data_root"
  fi
fi

if run_stage 1; then
  log "stage 1: prepare: scan $data_root, split -> $run_dir/split/"
  $waveflow train --config "$config" "${overrides[@]}" --prepare-only
  wc -l "$run_dir"/split/{train,val,test}.txt >&2
fi

if run_stage 2; then
  if [ "$ngpu" -gt 1 ]; then
    log "stage 2: train on $ngpu processes (accelerate launch)"
    accelerate launch --multi_gpu --num_processes "$ngpu" -m waveflow train --config "$config" "${overrides[@]}"
  else
    log "stage 2: train (one process)"
    $waveflow train --config "$config" "${overrides[@]}"
  fi
fi

if run_stage 3; then
  log "stage 3: export $run_dir/model.pt -> $exp/model.pt"
  $waveflow import "$run_dir/model.pt" "$exp/model.pt" --name "$name" --overwrite
  $waveflow info "$exp/model.pt"
fi

if run_stage 4; then
  log "stage 4: vocode the test split -> $exp/test/vocoded/"
  mapfile -t test_wavs < <(cut -d'|' -f2 "$run_dir/split/test.txt")
  [ "${#test_wavs[@]}" -gt 0 ] || { echo "run.sh: the test split is empty" >&2; exit 1; }
  $waveflow mel "${test_wavs[@]}" -o "$exp/test/mels" --checkpoint "$exp/model.pt" --overwrite --no-progress
  # shellcheck disable=SC2086
  $waveflow vocode "$exp/test/mels" -o "$exp/test/vocoded" --checkpoint "$exp/model.pt" --device "$device" \
    --overwrite --no-progress $vocode_args
fi

if run_stage 5; then
  log "stage 5: evaluate on the test split -> $exp/eval.json"
  # shellcheck disable=SC2086
  $waveflow eval "$run_dir/split/test.txt" --checkpoint "$exp/model.pt" --device "$device" \
    --json "$exp/eval.json" --no-progress $eval_args
fi

log "done (stages $stage..$stop_stage)"
