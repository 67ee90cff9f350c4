"""Writes N synthetic users as Parquet, deterministic for a seed, for measuring ebb at scale.

    /tmp/ebb-py/bin/python scripts/gen_users.py --rows 1000000 --out /tmp/users_1m.parquet

Columns match mappings/sample/users.yml, so that mapping can read the output.
"""

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.rows
    ids = np.arange(n)
    cities = np.array(["Berlin", "Lisbon", "Austin", "Toronto", "Osaka", "Nairobi", "Lima"])
    tags = np.array(["beta", "churn-risk,admin", "", "mobile", "api,beta,champion"])
    city_idx = rng.integers(0, len(cities), n)
    table = pa.table({
        "user_id": pa.array([f"u-{i:08d}" for i in ids]),
        "email": pa.array([f"user{i}@example.com" for i in ids]),
        "full_name": pa.array([f"Person {i}" for i in ids]),
        "account_id": pa.array([f"acc-{i:05d}" for i in rng.integers(0, 50_000, n)]),
        "signup_at": pa.array(1_546_300_800_000_000 + rng.integers(0, 150_000_000, n) * 1_000_000, pa.timestamp("us", tz="UTC")),
        "age": pa.array(rng.integers(18, 80, n), pa.int64()),
        "is_active": pa.array(rng.random(n) > 0.2),
        "cities": pa.array([[cities[c]] for c in city_idx], pa.list_(pa.string())),
        "tags": pa.array(tags[rng.integers(0, len(tags), n)]),
    })
    pq.write_table(table, args.out, row_group_size=128 * 1024)


if __name__ == "__main__":
    main()
