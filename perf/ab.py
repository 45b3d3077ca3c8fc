#!/usr/bin/env python3
"""Compare builds of shmq-perf on a noisy machine: run them alternately, one repetition each per
round, and print every round (the floor's p50 tells the VM's state, so rounds in the same state
can be paired) and then the median of each ratio per build.

    python3 perf/ab.py ROUNDS ROWS BIN...
    python3 perf/ab.py 6 floor,spsc64,topic,mpmc,batch,bare /tmp/before/shmq-perf target/release/shmq-perf

Build the "before" binary from another commit in its own worktree and target directory, e.g.
`git worktree add /tmp/before REV && CARGO_TARGET_DIR=/tmp/before/target cargo build --release
-p shmq-perf --manifest-path /tmp/before/Cargo.toml`.
"""
import json
import statistics
import subprocess
import sys


def run(binary, rows):
    out = subprocess.run(
        [binary, "--only", rows, "--reps", "1", "--count", "3000000", "--rounds", "30000", "--json"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"{binary} failed: {out.stderr[-500:]}")
    return json.loads(out.stdout)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, rows, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    seen = {b: {} for b in bins}
    for r in range(rounds):
        for b in bins:
            d = run(b, rows)
            ratios = {k: v for k, v in d["ratios"].items() if isinstance(v, (int, float))}
            floor = d["measurements"].get("floor_rtt", {}).get("p50_ns")
            cells = " ".join(f"{k}={v:.3f}" for k, v in sorted(ratios.items()))
            print(f"round {r} {b}: floor p50 {floor} ns; {cells}", flush=True)
            for k, v in ratios.items():
                seen[b].setdefault(k, []).append(v)
    keys = sorted({k for b in bins for k in seen[b]})
    print()
    print(f"{'median ratio':<40}" + "".join(f"{b[-24:]:>26}" for b in bins))
    for k in keys:
        cells = []
        for b in bins:
            v = seen[b].get(k, [])
            cells.append(f"{statistics.median(v):>26.3f}" if v else f"{'-':>26}")
        print(f"{k:<40}" + "".join(cells))


if __name__ == "__main__":
    main()
