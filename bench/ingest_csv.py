"""Benchmark: ingest a large deals CSV with crmsync vs. a bare stdlib baseline, in the same run.

Why a ratio: machines here are noisy, so absolute rows/s mean little; both
sides run back to back on the same file and the script prints crmsync's
throughput as a fraction of the baseline's, plus each one's peak RSS. A
second crmsync run on a quarter of the rows shows whether memory is flat.

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


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss


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

    base_s, base_rss = run_measured([sys.executable, "-c", BASELINE, str(big), str(tmp / "baseline.db")])
    ours_s, ours_rss = run_measured([*crmsync, str(crmsync_config(tmp, big, tmp / "crmsync.db"))])
    q_s, q_rss = run_measured([*crmsync, str(crmsync_config(tmp, small, tmp / "quarter.db"))])
    again_s, _ = run_measured([*crmsync, str(crmsync_config(tmp, big, tmp / "crmsync.db"))])

    result = {
        "rows": args.rows,
        "baseline_rows_per_s": round(args.rows / base_s),
        "crmsync_rows_per_s": round(args.rows / ours_s),
        "ratio": round(base_s / ours_s, 3),
        "crmsync_unchanged_rerun_rows_per_s": round(args.rows / again_s),
        "baseline_peak_rss_mib": round(base_rss / 1024, 1),
        "crmsync_peak_rss_mib": round(ours_rss / 1024, 1),
        "crmsync_peak_rss_mib_quarter_rows": round(q_rss / 1024, 1),
    }
    print(json.dumps(result, indent=2))
    print(f"crmsync ingests at {result['ratio']:.2f}x the baseline's speed (target >= 0.40); peak RSS "
          f"{result['crmsync_peak_rss_mib']} MiB for {args.rows:,} rows vs "
          f"{result['crmsync_peak_rss_mib_quarter_rows']} MiB for a quarter of them (flat memory = streaming).")
    if not args.keep:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
