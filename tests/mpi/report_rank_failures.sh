#!/usr/bin/env bash
# `mpirun xent report` with a rank that fails: the run ends within seconds
# with an error that names the rank, never a hang (mpirun's --timeout would
# say "time limit", which fails the case). Rank 1 gets its own command line
# (mpirun's "A : B" form). Usage: report_rank_failures.sh XENT "MPIRUN FLAGS" DIR
set -uo pipefail
xent=$1 mpirun=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir"
options=(report --quick --no-bench --no-examples --impl simd --out "$dir/out")
status=0
# expect NAME MESSAGE COMMAND...: a non-zero exit whose output contains MESSAGE.
expect() {
  local name=$1 message=$2
  shift 2
  "$@" > "$dir/$name.log" 2>&1
  local rc=$?
  if [[ $rc == 0 ]]; then
    echo "FAILED: $name: exit status 0"; status=1
  elif grep -q "time limit" "$dir/$name.log"; then
    echo "FAILED: $name: ended by mpirun's --timeout (a hang)"; cat "$dir/$name.log"; status=1
  elif ! grep -qF -- "$message" "$dir/$name.log"; then
    echo "FAILED: $name: no '$message' in:"; cat "$dir/$name.log"; status=1
  else
    echo "ok: $name: exit status $rc, '$message'"
  fi
}
# shellcheck disable=SC2086
{
  # A plug-in missing on rank 1's host: rank 0 names rank 1 and its error.
  expect setup "rank 1 failed before the sweep: cannot load plug-in $dir/missing.so" \
    $mpirun -np 1 "$xent" "${options[@]}" --filter c10_ : -np 1 "$xent" "${options[@]}" --filter c10_ \
    --plugin "$dir/missing.so"
  # Other options on rank 1: it would measure other scenarios.
  expect mismatch "rank 1 would measure something else than rank 0" \
    $mpirun -np 1 "$xent" "${options[@]}" --filter c10_ : -np 1 "$xent" "${options[@]}" --filter c2_
  # Rank 1 killed in the middle of its share (13 scenarios of C = 32000 on
  # one thread take far more than 2 s on any host): mpirun ends rank 0, which
  # waits for the share.
  expect crash "exited with non-zero status" \
    $mpirun -np 1 "$xent" "${options[@]}" --filter c32000_ --threads 1 : -np 1 bash -c \
    "\"\$0\" \"\$@\" & sleep 2; kill -SEGV \$!; wait \$!" "$xent" "${options[@]}" --filter c32000_ --threads 1
  # The benchmarks are not run under mpirun: the message says what to do.
  expect bench "add --no-bench, or --bench-json FILE" \
    $mpirun -np 2 "$xent" report --quick --filter c10_ --out "$dir/out"
}
exit $status
