"""Benchmark: ingest a large deals CSV with crmsync vs. a bare stdlib baseline, in the same run.

Why a ratio: machines here are noisy, so absolute rows/s mean little; both
sides run back to back on the same file and the script prints crmsync's
throughput as a fraction of the baseline's, plus each one's peak RSS. A
second crmsync run on a quarter of the rows shows whether memory is flat.
crmsync reads the file in a second process while the first writes (see
crmsync/sync.py), so its wall time needs two free cores; CPU µs per row (all
processes) and the load average are printed to tell a slow machine from a
slow crmsync. ``CRMSYNC_PARALLEL=0 python bench/ingest_csv.py`` measures the
one-process path.

Baseline: ``csv.reader`` + ``sqlite3.executemany("INSERT ... ON CONFLICT DO
UPDATE")`` of the same rows as raw text in 5,000-row transactions — no
parsing, no validation, no history, so it is the floor any ingest must pay.

Usage::

    python bench/ingest_csv.py                 # 1,000,000 rows (target: ratio >= 0.4, flat RSS)
    python bench/ingest_csv.py --rows 200000   # quicker
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

HEADER = ["ID", "Title", "Status", "Value", "Currency", "Pipeline", "Stage", "Probability", "Person ID",
          "Organization ID", "Owner ID", "Expected close date", "Created", "Updated", "Lost reason",
          "Lead source", "Product"]
STAGES = ["Prospecting", "Contact made", "Qualification", "Proposal made", "Negotiation"]


def generate(path: Path, rows: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    start = datetime(2023, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(1, rows + 1):
            created = start + timedelta(minutes=rnd.randrange(0, 900_000))
            status = rnd.choice(("Open", "Open", "Won", "Lost"))
            w.writerow([
                i, f"Deal {i} for Compañía {rnd.randrange(50_000)}", status,
                f"{rnd.randrange(100, 500_000)}.{rnd.randrange(100):02d}",
                rnd.choice(("EUR", "USD", "MXN")), "Sales", rnd.choice(STAGES), rnd.choice((10, 20, 40, 60, 80)),
                rnd.randrange(1, 200_000), rnd.randrange(1, 50_000), rnd.randrange(1, 40),
                (created + timedelta(days=rnd.randrange(10, 120))).date().isoformat(),
                created.strftime("%Y-%m-%d %H:%M:%S"),
                (created + timedelta(days=rnd.randrange(0, 60))).strftime("%Y-%m-%d %H:%M:%S"),
                "No budget" if status == "Lost" else "", rnd.choice(("Web", "Referral", "Event")),
                rnd.choice(("Basic", "Pro", "Enterprise")),
            ])


BASELINE = r"""
import csv, sqlite3, sys
src, db = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
with open(src, newline="", encoding="utf-8") as f:
    reader = csv.reader(f)
    header = next(reader)
    cols = ", ".join(f'"{h}"' for h in header)
    conn.execute(f"CREATE TABLE deals ({cols}, PRIMARY KEY (\"ID\"))")
    sets = ", ".join(f'"{h}" = excluded."{h}"' for h in header[1:])
    sql = f"INSERT INTO deals ({cols}) VALUES ({', '.join('?' * len(header))}) ON CONFLICT(\"ID\") DO UPDATE SET {sets}"
    batch = []
    for row in reader:
        batch.append(row)
        if len(batch) == 5000:
            conn.execute("BEGIN"); conn.executemany(sql, batch); conn.execute("COMMIT"); batch = []
    if batch:
        conn.execute("BEGIN"); conn.executemany(sql, batch); conn.execute("COMMIT")
"""


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float, int]:
    """Wall seconds, peak RSS (KiB) of the largest process, CPU seconds (user + system, the
    process and every child it waited for) and peak RSS (KiB) of the whole process tree, sampled
    every 20 ms from /proc (crmsync reads in a second process; the sum is what the machine holds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tree_peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            tree_peak[0] = max(tree_peak[0], _tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, max(tree_peak[0], usage.ru_maxrss)


def _tree_rss_kib(pid: int) -> int:
    """Resident KiB of a process and its descendants now (0 where /proc cannot tell)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return total
    return total + sum(_tree_rss_kib(c) for c in children)


def crmsync_config(tmp: Path, csv_path: Path, db: Path) -> Path:
    conf = tmp / f"{db.stem}.toml"
    conf.write_text(
        f'[warehouse]\npath = "{db}"\n\n[sources.bench]\ntype = "spreadsheet"\npath = "{csv_path}"\n'
        'mapping = "spreadsheet"\nentity = "deal"\ndate_order = "YMD"\n'
    )
    return conf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="crmsync-bench-"))
    big, small = tmp / "deals.csv", tmp / "deals_quarter.csv"
    generate(big, args.rows)
    generate(small, max(args.rows // 4, 1))
    crmsync = [sys.executable, "-m", "crmsync.cli", "sync", "--no-reconcile", "--json", "--config"]

    base_s, base_rss, base_cpu, _ = run_measured([sys.executable, "-c", BASELINE, str(big), str(tmp / "baseline.db")])
    ours_s, ours_rss, ours_cpu, ours_tree = run_measured([*crmsync, str(crmsync_config(tmp, big, tmp / "crmsync.db"))])
    q_s, q_rss, _, q_tree = run_measured([*crmsync, str(crmsync_config(tmp, small, tmp / "quarter.db"))])
    again_s, _, again_cpu, _ = run_measured([*crmsync, str(crmsync_config(tmp, big, tmp / "crmsync.db"))])

    result = {
        "rows": args.rows,
        "baseline_rows_per_s": round(args.rows / base_s),
        "crmsync_rows_per_s": round(args.rows / ours_s),
        "ratio": round(base_s / ours_s, 3),
        "crmsync_unchanged_rerun_rows_per_s": round(args.rows / again_s),
        # CPU (user + system, all processes) per row: what the ratio is made of, and less sensitive
        # than wall time to other load on the machine.
        "baseline_cpu_us_per_row": round(1e6 * base_cpu / args.rows, 1),
        "crmsync_cpu_us_per_row": round(1e6 * ours_cpu / args.rows, 1),
        "crmsync_rerun_cpu_us_per_row": round(1e6 * again_cpu / args.rows, 1),
        "baseline_peak_rss_mib": round(base_rss / 1024, 1),
        "crmsync_peak_rss_mib": round(ours_rss / 1024, 1),
        "crmsync_peak_rss_mib_quarter_rows": round(q_rss / 1024, 1),
        "crmsync_tree_peak_rss_mib": round(ours_tree / 1024, 1),
        "crmsync_tree_peak_rss_mib_quarter_rows": round(q_tree / 1024, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    print(f"crmsync ingests at {result['ratio']:.2f}x the baseline's speed (target >= 0.40); peak RSS "
          f"{result['crmsync_peak_rss_mib']} MiB for {args.rows:,} rows vs "
          f"{result['crmsync_peak_rss_mib_quarter_rows']} MiB for a quarter of them (flat memory = streaming); "
          f"both processes together: {result['crmsync_tree_peak_rss_mib']} vs "
          f"{result['crmsync_tree_peak_rss_mib_quarter_rows']} MiB.")
    if not args.keep:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
