"""Benchmark: how close crmsync's spreadsheet ingest is to the fastest Python could write the same rows.

Why: ``bench/ingest_csv.py`` compares crmsync with a baseline that stores the CSV's 17 text cells
as they are. crmsync stores a different row: the canonical columns, the raw row as JSON and
three indexes. This script adds a *floor* measured in the same run: a hand-written
two-process pipeline (a forked reader, a writer, the same 1,000-row messages and 5,000-row
transactions) that writes crmsync's exact ``deals`` row shape for this one file, with every
value hard-coded for its column: no mapping, no messy-input handling, no quarantine, no history,
no bookkeeping. Nothing general can beat it, so ``floor / baseline`` bounds the ratio any Python
implementation of this warehouse can reach on two cores, and ``crmsync / floor`` is what the
generality costs.

Usage::

    python bench/ingest_floor.py                 # 1,000,000 rows
    python bench/ingest_floor.py --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest_csv import BASELINE, crmsync_config, generate, run_measured  # noqa: E402

FLOOR = r"""
import csv, fcntl, json, marshal, multiprocessing as mp, queue, sqlite3, sys, threading
src, db = sys.argv[1], sys.argv[2]
N = float("nan")
COLUMNS = ["source", "source_id", "title", "status", "value", "currency", "pipeline_id", "pipeline_name",
           "stage_id", "stage_name", "stage_category", "probability", "person_id", "person_name", "org_id",
           "org_name", "owner_id", "owner_name", "expected_close_date", "add_time", "update_time",
           "stage_change_time", "won_time", "lost_time", "close_time", "lost_reason", "source_lead_id",
           "archived", "stage_entered", "person_ids", "custom", "raw"]
STATUS = {"Open": "open", "Won": "won", "Lost": "lost"}
CATEGORY = {"Prospecting": "prospecting", "Contact made": "contact", "Qualification": "qualification",
            "Proposal made": "proposal", "Negotiation": "negotiation"}
encode = json.encoder.encode_basestring


def read(conn):
    with open(src, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        prefixes = [encode(h) + ":" for h in header]
        dumps, out = marshal.dumps, []
        for cells in reader:
            (i, title, status, value, cur, pipe, stage, prob, person, org, owner, close, created, updated,
             lost, lead_source, product) = cells
            raw = "{" + ",".join([p + encode(c) for p, c in zip(prefixes, cells) if c]) + "}"
            custom = '{"Lead source":' + encode(lead_source) + ',"Product":' + encode(product) + "}"
            params = ("bench", i, title, STATUS[status], value, cur, pipe, pipe, pipe + "/" + stage, stage,
                      CATEGORY[stage], prob, person, N, org, N, owner, N, close,
                      created[:10] + "T" + created[11:] + "Z", updated[:10] + "T" + updated[11:] + "Z",
                      N, N, N, N, lost or N, N, N, N, N, custom, raw)
            out.append(params)
            if len(out) == 1000:
                conn.send_bytes(dumps(out))
                out = []
    if out:
        conn.send_bytes(dumps(out))
    conn.send_bytes(dumps(None))


conn = sqlite3.connect(db, isolation_level=None)
for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-32768", "wal_autocheckpoint=8000"):
    conn.execute("PRAGMA " + pragma)
conn.execute(f"CREATE TABLE deals ({', '.join(COLUMNS)}, first_run, last_run, removed_run, "
             "PRIMARY KEY (source, source_id))")
conn.execute("CREATE INDEX idx_deals_source_stage_id ON deals (source, stage_id)")
conn.execute("CREATE INDEX idx_deals_source_source_lead_id ON deals (source, source_lead_id)")
sql = f"INSERT INTO deals ({', '.join(COLUMNS)}, first_run, last_run) VALUES ({', '.join('?' * len(COLUMNS))}, 1, 1)"
receiver, sender = mp.Pipe(duplex=False)
fcntl.fcntl(receiver.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ, as crmsync does
reader = mp.get_context("fork").Process(target=read, args=(sender,))
reader.start()
sender.close()
inbox = queue.Queue(7)


def pump():
    while True:
        data = receiver.recv_bytes()
        inbox.put(data)
        if data == marshal.dumps(None):
            return


threading.Thread(target=pump, daemon=True).start()
batch = []
while (rows := marshal.loads(inbox.get())) is not None:
    ids = [r[1] for r in rows]  # what the writer must at least do: look for stored rows, insert
    conn.execute(f"SELECT source_id, last_run, removed_run FROM deals WHERE source = 'bench' AND source_id IN "
                 f"({', '.join('?' * len(ids))})", ids).fetchall()
    batch += rows
    if len(batch) >= 5000:
        conn.execute("BEGIN"); conn.executemany(sql, batch); conn.execute("COMMIT"); batch = []
if batch:
    conn.execute("BEGIN"); conn.executemany(sql, batch); conn.execute("COMMIT")
reader.join()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="crmsync-floor-"))
    csv_path = tmp / "deals.csv"
    generate(csv_path, args.rows)
    crmsync = [sys.executable, "-m", "crmsync.cli", "sync", "--no-reconcile", "--json", "--config",
               str(crmsync_config(tmp, csv_path, tmp / "crmsync.db"))]
    base_s, _, base_cpu, _ = run_measured([sys.executable, "-c", BASELINE, str(csv_path), str(tmp / "baseline.db")])
    floor_s, _, floor_cpu, _ = run_measured([sys.executable, "-c", FLOOR, str(csv_path), str(tmp / "floor.db")])
    ours_s, _, ours_cpu, _ = run_measured(crmsync)
    per_row = 1e6 / args.rows
    result = {
        "rows": args.rows,
        "floor_vs_baseline": round(base_s / floor_s, 3),
        "crmsync_vs_baseline": round(base_s / ours_s, 3),
        "crmsync_vs_floor": round(floor_s / ours_s, 3),
        "cpu_us_per_row": {"baseline": round(base_cpu * per_row, 1), "floor": round(floor_cpu * per_row, 1),
                           "crmsync": round(ours_cpu * per_row, 1)},
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    print(f"the hand-written floor writes crmsync's rows at {result['floor_vs_baseline']:.2f}x the baseline; "
          f"crmsync at {result['crmsync_vs_baseline']:.2f}x, i.e. {result['crmsync_vs_floor']:.2f} of the floor.")
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
