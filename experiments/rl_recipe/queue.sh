#!/usr/bin/env bash
# Runs TGRPO pilots one after the other (2 cores: one at a time). Usage: queue.sh CKPT "name|seed|k=v k=v" ...
set -u
ckpt=$1; shift
export OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl
for spec in "$@"; do
  IFS='|' read -r name seed kv <<< "$spec"
  echo "[queue] $(date +%T) start $name seed $seed: $kv"
  # shellcheck disable=SC2086
  .venv/bin/python experiments/session_2026-12-02/rl_pilot.py "$ckpt" "$seed" "run_name=\"$name\"" $kv \
      > "outputs/logs/$name.log" 2>&1
  tr "\r" "\n" < "outputs/logs/$name.log" | grep "^RESULT" || tail -5 "outputs/logs/$name.log"
  echo "[queue] $(date +%T) end $name"
done
