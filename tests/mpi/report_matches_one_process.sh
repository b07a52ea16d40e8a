#!/usr/bin/env bash
# `mpirun -np K xent report` writes the report of one process: report.json
# identical but for the timings, the date and the line that names the ranks;
# report.md likewise; the plots byte for byte. Every rank measured a share,
# and the shares add up to every scenario, each measured by every
# implementation (a share lost on the way changes the cells and fails here).
# Usage: report_matches_one_process.sh XENT "MPIRUN FLAGS" K DIR
set -euo pipefail
xent=$1 mpirun=$2 ranks=$3 dir=$4
rm -rf "$dir" && mkdir -p "$dir"
# A small sweep: the C = 10 scenarios of both sets (every family, both layouts),
# mpi among the implementations (it computes as each process's only rank), and the examples.
options=(report --quick --no-bench --filter c10_ --impl simd,mpi)
"$xent" "${options[@]}" --out "$dir/one" > "$dir/one.stdout"
# shellcheck disable=SC2086
$mpirun -np "$ranks" "$xent" "${options[@]}" --out "$dir/many" > "$dir/many.stdout"
python3 - "$dir" "$ranks" <<'PY'
import json, os, re, sys
d, ranks = sys.argv[1], int(sys.argv[2])
failed = []
def check(ok, what):
    print(("ok: " if ok else "FAILED: ") + what)
    if not ok: failed.append(what)

one, many = (json.load(open("%s/%s/report.json" % (d, n))) for n in ("one", "many"))
# The split: named in the context, a share on every rank, every scenario once.
split = many["context"].pop("accuracy sweep split over", "")
m = re.fullmatch(r"(\d+) MPI ranks? \(scenarios per rank: ([\d, ]+)\)", split)
check(m is not None, "the report names the ranks that measured the sweep: %r" % split)
if m:
    shares = [int(x) for x in m.group(2).split(", ")]
    check(int(m.group(1)) == ranks and len(shares) == ranks, "%d ranks, %d shares" % (ranks, len(shares)))
    check(all(s > 0 for s in shares), "every rank measured scenarios: %s" % shares)
    check(sum(shares) == len(one["scenarios"]), "the shares add up to the %d scenarios" % len(one["scenarios"]))
for r in (one, many):
    impls = {c["implementation"] for c in r["accuracy"]}
    # mpi computes float32 logits only: the bfloat16, float16 and float64
    # scenarios are simd's alone.
    f32 = sum(1 for s in r["scenarios"] if not s["id"].endswith(("_bf16", "_f16", "_f64")))
    f64 = sum(1 for s in r["scenarios"] if s["id"].endswith("_f64"))
    check(impls == {"simd", "mpi"} and len(r["accuracy"]) == len(r["scenarios"]) + f32 > 0 and
          f32 < len(r["scenarios"]) and f64 > 0,
          "%d cells: every scenario by simd, the float32 ones by mpi" % len(r["accuracy"]))
    check(all(c["failure"] is None and c["loss"] is not None for c in r["accuracy"]), "every cell measured")
# What legitimately differs: the timings and the date.
for r in (one, many):
    for k in ("seconds", "sweep_seconds"): r.pop(k)
    for s in r["scenarios"]: s.pop("seconds")
    r["context"].pop("date")
for k in one:
    check(one[k] == many[k], "report.json %s: the same as one process's" % k)
check(set(one) == set(many), "report.json has the same keys")

def normalised(path):
    out = []
    for line in open(path):
        if line.startswith("| date |") or line.startswith("| accuracy sweep split over |"): continue
        line = re.sub(r"\| [0-9.]+ s \|$", "| T |", line)          # a scenario's time
        line = re.sub(r"accuracy sweep [0-9.]+ s, total [0-9.]+ s", "TIMES", line)
        out.append(line)
    return out
a, b = normalised("%s/one/report.md" % d), normalised("%s/many/report.md" % d)
check(a == b, "report.md (timings and date aside): the same as one process's")
if a != b:
    for x, y in zip(a, b):
        if x != y: print("  one:  " + x + "  many: " + y, end=""); break
check(normalised("%s/many.stdout" % d) == b, "the Markdown printed once (by rank 0)")
plots = sorted(f for f in os.listdir("%s/one" % d) if f.endswith((".svg", ".gp")))
check(plots == sorted(f for f in os.listdir("%s/many" % d) if f.endswith((".svg", ".gp"))), "the same plots: %s" % plots)
for plot in plots:
    check(open("%s/one/%s" % (d, plot), "rb").read() == open("%s/many/%s" % (d, plot), "rb").read(),
          "%s byte for byte" % plot)
sys.exit(1 if failed else 0)
PY
