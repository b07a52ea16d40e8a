#!/usr/bin/env bash
# `mpirun -np K xent check --impl mpi` prints the JSON of one process running
# openmp (the implementation's name aside), once, and writes --grad-out once,
# with the same bytes. Usage: check_matches_one_process.sh XENT "MPIRUN FLAGS" K DIR
set -euo pipefail
xent=$1 mpirun=$2 ranks=$3 dir=$4
mkdir -p "$dir"
# Inputs: [6, 70000] (several of openmp's chunks per rank) and [5, 33] (one).
python3 - "$dir" <<'PY'
import random, struct, sys
def save(path, descr, fmt, shape, vals):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    hdr += " " * (64 - (11 + len(hdr)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(struct.pack("<%d%s" % (len(vals), fmt), *vals))
r = random.Random(1)
for name, n, c in (("long", 6, 70000), ("short", 5, 33)):
    save("%s/%s_x.npy" % (sys.argv[1], name), "<f4", "f", (n, c), [r.gauss(0, 3) for _ in range(n * c)])
    save("%s/%s_t.npy" % (sys.argv[1], name), "<i8", "q", (n,), [r.randrange(c) for _ in range(n)])
PY
status=0
for case in long short; do
  for extra in "" "--reduction none --label-smoothing 0.1"; do
    # shellcheck disable=SC2086
    "$xent" check --impl openmp --logits "$dir/${case}_x.npy" --target "$dir/${case}_t.npy" $extra --json \
      --grad-out "$dir/one.npy" | sed 's/"openmp"/"IMPL"/g' > "$dir/one.json"
    # shellcheck disable=SC2086
    $mpirun -np "$ranks" "$xent" check --impl mpi --logits "$dir/${case}_x.npy" --target "$dir/${case}_t.npy" $extra \
      --json --grad-out "$dir/many.npy" | sed 's/"mpi"/"IMPL"/g' > "$dir/many.json"
    sed -i "s|$dir/many.npy|$dir/one.npy|g" "$dir/many.json"
    if [[ $(wc -l < "$dir/many.json") != 1 ]]; then
      echo "FAILED: $case $extra: $(wc -l < "$dir/many.json") lines of JSON from $ranks ranks (expected rank 0's one)"; status=1
    elif ! cmp -s "$dir/one.json" "$dir/many.json"; then
      echo "FAILED: $case $extra: the JSON differs from one process's"; diff "$dir/one.json" "$dir/many.json" | head -c 2000; status=1
    elif ! cmp -s "$dir/one.npy" "$dir/many.npy"; then
      echo "FAILED: $case $extra: the gradient written under mpirun differs from one process's"; status=1
    else
      echo "ok: $case $extra: $ranks ranks give one process's JSON and gradient"
    fi
  done
done
exit $status
