"""Writes ebb's bundled sample data and its Parquet test fixtures.

The outputs are committed, so neither the quick start nor the tests need
Python. Rerun after changing this file:

    python3 -m venv /tmp/ebb-py && /tmp/ebb-py/bin/pip install pyarrow duckdb pandas polars
    /tmp/ebb-py/bin/python scripts/make_data.py            # everything
    /tmp/ebb-py/bin/python scripts/make_data.py profiles   # one group: samples, types, users, profiles, edges, corrupt

Everything is deterministic (fixed seed, fixed clock), so a rerun rewrites
byte-identical data apart from writer metadata.
"""

import datetime as dt
import decimal
import os
import random

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample")
FIX = os.path.join(ROOT, "tests", "fixtures")
UTC = dt.timezone.utc

PLANS = ["Free", "Starter", "Growth", "Enterprise"]
SEGMENTS = ["SMB", "Mid-Market", "Enterprise"]
CITIES = ["Berlin", "Lisbon", "Austin", "Toronto", "Osaka", "Nairobi", "Lima"]
TAGS = ["beta", "churn-risk", "champion", "admin", "mobile", "api"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald", "Radia", "Leslie"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth", "Perlman", "Lamport"]


def sample_accounts(rng, n):
    rows = []
    for i in range(n):
        rows.append({
            "account_id": f"acc-{i:04d}",
            "name": f"{rng.choice(LAST)} {rng.choice(['Labs', 'GmbH', 'Inc', 'Co'])} {i}",
            "plan": rng.choice(PLANS),
            "segment": rng.choice(SEGMENTS),
            "arr": decimal.Decimal(rng.randrange(0, 50_000_000)) / 100,
            "seats": rng.randrange(1, 500),
            "created": dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(0, 3000)),
        })
    return rows


def sample_users(rng, n, n_accounts):
    rows = []
    for i in range(n):
        rows.append({
            "user_id": f"u-{i:05d}",
            "email": f"user{i}@example.com",
            "full_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "account_id": f"acc-{rng.randrange(n_accounts):04d}",
            "signup_at": dt.datetime(2019, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=rng.randrange(0, 150_000_000)),
            "age": rng.randrange(18, 80) if rng.random() > 0.1 else None,
            "is_active": rng.random() > 0.2,
            "cities": rng.sample(CITIES, rng.randrange(0, 3)),
            "tags": ",".join(rng.sample(TAGS, rng.randrange(0, 4))),
        })
    return rows


USERS_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("email", pa.string()),
    ("full_name", pa.string()),
    ("account_id", pa.string()),
    ("signup_at", pa.timestamp("us", tz="UTC")),
    ("age", pa.int64()),
    ("is_active", pa.bool_()),
    ("cities", pa.list_(pa.string())),
    ("tags", pa.string()),
])

ACCOUNTS_SCHEMA = pa.schema([
    ("account_id", pa.string()),
    ("name", pa.string()),
    ("plan", pa.string()),
    ("segment", pa.string()),
    ("arr", pa.decimal128(12, 2)),
    ("seats", pa.int32()),
    ("created", pa.date32()),
])


def write_samples():
    rng = random.Random(7)
    accounts = sample_accounts(rng, 60)
    users = sample_users(rng, 300, 60)
    os.makedirs(SAMPLE, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(accounts, ACCOUNTS_SCHEMA), os.path.join(SAMPLE, "accounts.parquet"))
    pq.write_table(pa.Table.from_pylist(users, USERS_SCHEMA), os.path.join(SAMPLE, "users.parquet"))
    return users


def write_all_types():
    """One row per case, covering every Arrow type the Parquet source reads."""
    ny = "America/New_York"
    t0 = dt.datetime(2021, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    cols = {
        "id_utf8": pa.array(["r1", "r2", "r3"], pa.string()),
        "s_large": pa.array(["large", None, "é✓"], pa.large_string()),
        "s_dict": pa.array(["red", "blue", "red"], pa.string()).dictionary_encode(),
        "i8": pa.array([-8, None, 8], pa.int8()),
        "i16": pa.array([-16, 0, 16], pa.int16()),
        "i32": pa.array([-32, 0, 32], pa.int32()),
        "i64": pa.array([-(2**40), 0, 2**40], pa.int64()),
        "u8": pa.array([8, 0, 255], pa.uint8()),
        "u16": pa.array([16, 0, 65535], pa.uint16()),
        "u32": pa.array([32, 0, 4294967295], pa.uint32()),
        "u64": pa.array([64, 0, 2**63 + 1], pa.uint64()),
        "f32": pa.array([1.5, -0.0, None], pa.float32()),
        "f64": pa.array([0.1, 2.0, -3.25], pa.float64()),
        "dec": pa.array([decimal.Decimal("12.50"), decimal.Decimal("-0.01"), decimal.Decimal("100.00")], pa.decimal128(10, 2)),
        "flag": pa.array([True, False, None], pa.bool_()),
        "d32": pa.array([dt.date(2020, 2, 29), None, dt.date(2001, 1, 1)], pa.date32()),
        "d64": pa.array([dt.date(2020, 2, 29), dt.date(2000, 1, 1), None], pa.date64()),
        "ts_s": pa.array([t0.replace(microsecond=0, tzinfo=None)] * 3, pa.timestamp("s")),
        "ts_ms": pa.array([t0.replace(tzinfo=None)] * 3, pa.timestamp("ms")),
        "ts_us": pa.array([t0.replace(tzinfo=None)] * 3, pa.timestamp("us")),
        "ts_ns": pa.array([t0.replace(tzinfo=None)] * 3, pa.timestamp("ns")),
        "ts_utc": pa.array([t0] * 3, pa.timestamp("us", tz="UTC")),
        "ts_ny": pa.array([t0] * 3, pa.timestamp("ms", tz=ny)),
        "epoch_s": pa.array([1614834367, 1614834367, 1614834367], pa.int64()),
        "epoch_ms": pa.array([1614834367123, 1614834367123, 1614834367123], pa.int64()),
        "created_text": pa.array(["2021-03-04T05:06:07Z", "2021-03-04T06:06:07+01:00", "2021-03-04"], pa.string()),
        "l_utf8": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
        "ll_i64": pa.array([[1, 2, 3], [None, 4], None], pa.large_list(pa.int64())),
        "l_f64": pa.array([[0.5], [], [1.0, 2.5]], pa.list_(pa.float64())),
        "l_bool": pa.array([[True, False], [True], []], pa.list_(pa.bool_())),
        "csv": pa.array(["x, y,,z", "", None], pa.string()),
        "num_text": pa.array(["42", " 3.5 ", "1e3"], pa.string()),
        "bool_text": pa.array(["true", "No", "1"], pa.string()),
    }
    pq.write_table(pa.table(cols), os.path.join(FIX, "all_types.parquet"))

    unsupported = pa.table({
        "id": pa.array(["a"], pa.string()),
        "blob": pa.array([b"\x00\x01"], pa.binary()),
        "nested": pa.array([{"x": 1}], pa.struct([("x", pa.int64())])),
    })
    pq.write_table(unsupported, os.path.join(FIX, "unsupported.parquet"))


def fixture_users():
    rng = random.Random(11)
    return sample_users(rng, 40, 5)


def write_writer_equivalence(users):
    """The same 40 users, written by pyarrow and by DuckDB with other encodings."""
    d = os.path.join(FIX, "users")
    os.makedirs(d, exist_ok=True)
    base = pa.Table.from_pylist(users, USERS_SCHEMA)
    pq.write_table(base, os.path.join(d, "pyarrow.parquet"))

    # pyarrow, other physical encodings of the same logical types:
    # large strings, dictionary strings, large lists, a named zone, nanoseconds.
    alt = pa.table({
        "user_id": base["user_id"].cast(pa.large_string()),
        "email": base["email"].dictionary_encode(),
        "full_name": base["full_name"].cast(pa.large_string()),
        "account_id": base["account_id"].dictionary_encode(),
        "signup_at": base["signup_at"].cast(pa.timestamp("ns", tz="Asia/Tokyo")),
        "age": base["age"].cast(pa.int32()),
        "is_active": base["is_active"],
        "cities": base["cities"].cast(pa.large_list(pa.large_string())),
        "tags": base["tags"],
    })
    pq.write_table(alt.take(list(reversed(range(alt.num_rows)))), os.path.join(d, "pyarrow_alt_encodings.parquet"),
                   use_dictionary=True, compression="zstd", row_group_size=7)

    # DuckDB, split over two files in another row order.
    split = os.path.join(FIX, "users_duckdb")
    os.makedirs(split, exist_ok=True)
    con = duckdb.connect()
    con.register("u", base)
    con.execute("SET TimeZone='UTC'")
    con.execute(f"COPY (SELECT * FROM u WHERE user_id >= 'u-00020' ORDER BY email DESC) TO '{split}/part-1.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT * FROM u WHERE user_id < 'u-00020' ORDER BY full_name) TO '{split}/part-0.parquet' (FORMAT parquet, COMPRESSION gzip)")

    # Three users changed in one attribute each.
    changed = [dict(r) for r in users]
    changed[3]["full_name"] = "Renamed Person"
    changed[17]["age"] = 99
    changed[29]["is_active"] = not changed[29]["is_active"]
    pq.write_table(pa.Table.from_pylist(changed, USERS_SCHEMA), os.path.join(FIX, "users_3_changed.parquet"))

    # Bad rows among good ones.
    bad = [dict(r) for r in users[:10]]
    bad[1]["user_id"] = None
    bad[2]["user_id"] = "  "
    bad[3]["user_id"] = "u-00004"  # duplicates row 4
    bad[5]["signup_at"] = dt.datetime(1999, 6, 1, tzinfo=UTC)
    bad[6]["signup_at"] = dt.datetime(2100, 1, 1, tzinfo=UTC)
    bad[7]["signup_at"] = None
    t = pa.Table.from_pylist(bad, USERS_SCHEMA)
    t = t.set_column(t.schema.get_field_index("age"), "age",
                     pa.array(["31", "x", "40", "41", "42", "43", "44", "45", "not a number", "50"], pa.string()))
    pq.write_table(t, os.path.join(FIX, "users_invalid.parquet"))

    # Retyped: age as text, and a file where a mapped column is missing.
    pq.write_table(base.set_column(base.schema.get_field_index("age"), "age", base["age"].cast(pa.string())),
                   os.path.join(FIX, "users_age_as_text.parquet"))
    pq.write_table(base.drop_columns(["is_active"]), os.path.join(FIX, "users_missing_column.parquet"))


PEOPLE_SCHEMA = pa.schema([
    ("user_id", pa.int64()),
    ("email", pa.string()),
    ("full_name", pa.string()),
    ("persona", pa.string()),
    ("seats", pa.int32()),
    ("score", pa.float64()),
    ("is_admin", pa.bool_()),
    ("last_contact_at", pa.timestamp("us", tz="UTC")),
    ("birthday", pa.date32()),
    ("segments", pa.list_(pa.string())),
    ("tags", pa.string()),
    ("account_id", pa.string()),
])


def write_profiles():
    """People for the profiles destination (pyarrow), with every email and name rejection
    among good rows, and their companies (DuckDB), before and after a change."""
    d = os.path.join(FIX, "profiles")
    os.makedirs(d, exist_ok=True)
    t = dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    def person(i, email, name, account="acc-1", **kw):
        row = {"user_id": i, "email": email, "full_name": name, "persona": "Admin" if i % 2 else "Analyst",
               "seats": 10 * i, "score": i + 0.5, "is_admin": i % 2 == 1, "last_contact_at": t,
               "birthday": dt.date(1990, 1, i), "segments": ["beta", "vip"] if i % 2 else [],
               "tags": "a, b" if i % 2 else None, "account_id": account}
        row.update(kw)
        return row
    people = [
        person(1, "  Ada@Example.COM ", "  Ada Lovelace  "),
        person(2, "grace@example.com", "Grace Hopper", account="acc-2", persona=None, segments=None),
        person(3, "manager_001@large.org", "Pseudonymous Manager", account="acc-2"),
        person(4, "alan@example.com", "Alan Turing", account="acc-3"),
        person(5, "edsger@example.com", "Edsger Dijkstra", account="acc-missing"),
        person(6, "barbara@example.com", "Barbara Liskov", account=None),
        person(7, "ken@example.com", "Ken Thompson", account="acc-dup"),
        person(8, None, "No Email"),
        person(9, "   ", "Blank Email"),
        person(10, "not-an-email", "No At"),
        person(11, "two@@example.com", "Two Ats"),
        person(12, "nodot@localhost", "No Dot"),
        person(13, "sp ace@example.com", "Space"),
        person(14, "x" * 250 + "@example.com", "Too Long"),
        person(15, "noname@example.com", None),
        person(16, "blankname@example.com", "   "),
        person(17, "TWIN@example.com", "Twin One"),
        person(18, "twin@example.com ", "Twin Two"),
        person(19, "@example.com", "No Local Part"),
    ]
    pq.write_table(pa.Table.from_pylist(people, PEOPLE_SCHEMA), os.path.join(d, "people.parquet"))

    con = duckdb.connect()
    con.execute("""CREATE TABLE companies AS SELECT * FROM (VALUES
        ('acc-1', 'Analytical Engines', 250, 'EU'),
        ('acc-2', 'Navy Labs', 40, 'US'),
        ('acc-3', 'Bletchley', 12, 'UK'),
        ('acc-dup', 'Twin Co A', 1, 'US'),
        ('acc-dup', 'Twin Co B', 2, 'US')
    ) AS c(id, account_name, employees, region)""")
    con.execute(f"COPY companies TO '{d}/companies.parquet' (FORMAT parquet)")
    # acc-2's mapped size changes; acc-3's unmapped region changes.
    con.execute("UPDATE companies SET employees = 45 WHERE id = 'acc-2'")
    con.execute("UPDATE companies SET region = 'EU' WHERE id = 'acc-3'")
    con.execute(f"COPY companies TO '{d}/companies_changed.parquet' (FORMAT parquet)")


EDGE_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("ts_s", pa.timestamp("s")),
    ("ts_ms", pa.timestamp("ms")),
    ("ts_us", pa.timestamp("us", tz="UTC")),
    ("ts_ns", pa.timestamp("ns")),
    ("d32", pa.date32()),
    ("d64", pa.date64()),
    ("dec", pa.decimal128(38, 2)),
    ("f16", pa.float16()),
    ("f32", pa.float32()),
    ("f64", pa.float64()),
    ("empty", pa.null()),
])

I64 = (-(2**63), 2**63 - 1)
I32 = (-(2**31), 2**31 - 1)
DEC38 = decimal.Decimal("9" * 36 + ".99")


def edge_rows():
    """One row per extreme value, every other column null, so that each row's fate is that of
    its one value; `ok` holds ordinary values, and the `edge_*` rows the last values that map."""
    import numpy as np
    rows = [("ok", {"ts_s": 1_700_000_000, "ts_ms": 1_700_000_000_123, "ts_us": 1_700_000_000_123_456,
                    "ts_ns": 1_700_000_000_123_456_789, "d32": 19_000, "d64": 19_000 * 86_400_000,
                    "dec": decimal.Decimal("12.50"), "f16": np.float16(1.5), "f32": 2.25, "f64": 0.1})]
    # (Parquet has no date64: pyarrow writes days, and wraps these, so date64 is tested in Rust.)
    for col in ("ts_ms", "ts_us", "ts_ns"):
        rows += [(f"{col}_min", {col: I64[0]}), (f"{col}_max", {col: I64[1]})]
    # Parquet has no seconds: pyarrow stores them as milliseconds, so these are the widest.
    rows += [("ts_s_min", {"ts_s": -(2**63 // 1000)}), ("ts_s_max", {"ts_s": (2**63 - 1) // 1000})]
    rows += [("d32_min", {"d32": I32[0]}), ("d32_max", {"d32": I32[1]})]
    rows += [
        ("edge_first_day", {"d32": -719_162}),                      # 0001-01-01
        ("edge_last_day", {"d32": 2_932_896}),                      # 9999-12-31
        ("edge_last_second", {"ts_s": 253_402_300_799}),            # 9999-12-31T23:59:59Z
        ("past_last_second", {"ts_s": 253_402_300_800}),            # 10000-01-01T00:00:00Z
        ("before_first_day", {"d32": -719_163}),                    # 0001-12-31 BC
        ("dec_max", {"dec": DEC38}),
        ("dec_min", {"dec": DEC38.copy_negate()}),  # `-` would round to 28 digits
        ("f16_nan", {"f16": np.float16("nan")}),
        ("f16_inf", {"f16": np.float16("inf")}),
        ("f32_nan", {"f32": float("nan")}),
        ("f32_neg_inf", {"f32": float("-inf")}),
        ("f64_nan", {"f64": float("nan")}),
        ("f64_inf", {"f64": float("inf")}),
    ]
    return rows


def edge_table(rows):
    columns = {name: [] for name in EDGE_SCHEMA.names}
    for id_, values in rows:
        for name in EDGE_SCHEMA.names:
            columns[name].append(id_ if name == "id" else values.get(name))
    arrays = []
    for field in EDGE_SCHEMA:
        values = columns[field.name]
        if pa.types.is_timestamp(field.type) or pa.types.is_date(field.type):
            # Raw integers: pyarrow writes what Python's datetime cannot hold.
            storage = pa.int32() if field.type == pa.date32() else pa.int64()
            arrays.append(pa.array(values, storage).view(field.type))
        elif pa.types.is_decimal(field.type):
            # One at a time: pyarrow infers a precision from the first value and refuses the rest.
            arrays.append(pa.concat_arrays([pa.array([v], field.type) for v in values]))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=EDGE_SCHEMA)


def write_edges():
    """Extreme legal values, each of which maps or rejects its own row: from pyarrow, DuckDB,
    pandas and polars (whose empty columns are Arrow's `null` type)."""
    import pandas as pd
    import polars as pl
    d = os.path.join(FIX, "edges")
    os.makedirs(d, exist_ok=True)
    pq.write_table(edge_table(edge_rows()), os.path.join(d, "pyarrow.parquet"))

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(f"""COPY (SELECT * FROM (VALUES
        ('ok', TIMESTAMPTZ '2023-11-14 22:13:20.123456+00', DATE '2022-01-08', 12.50::DECIMAL(38,2), 0.1::DOUBLE, 'Ada'),
        ('ts_infinity', 'infinity'::TIMESTAMPTZ, NULL, NULL, NULL, 'Bea'),
        ('ts_neg_infinity', '-infinity'::TIMESTAMPTZ, NULL, NULL, NULL, 'Cy'),
        ('date_infinity', NULL, 'infinity'::DATE, NULL, NULL, 'Di'),
        ('date_neg_infinity', NULL, '-infinity'::DATE, NULL, NULL, 'Ed'),
        ('date_bc', NULL, DATE '0044-03-15 (BC)', NULL, NULL, 'Flo'),
        ('date_far', NULL, DATE '200000-01-01', NULL, NULL, 'Gus'),
        ('ts_far', TIMESTAMPTZ '294246-12-31 23:59:59+00', NULL, NULL, NULL, 'Hal'),
        ('dec_max', NULL, NULL, 999999999999999999999999999999999999.99::DECIMAL(38,2), NULL, 'Ivy'),
        ('nan', NULL, NULL, NULL, 'nan'::DOUBLE, 'Jo'),
        ('inf', NULL, NULL, NULL, '-inf'::DOUBLE, 'Kim'),
        ('long_text', NULL, NULL, NULL, NULL, repeat('x', 3 * 1024 * 1024))
    ) AS t(id, seen_at, born, arr, score, name)) TO '{d}/duckdb.parquet' (FORMAT parquet)""")

    # An export whose column happens to have no value: each of these writes it as Arrow's `null`.
    people = {"id": ["p1", "p2", "p3"], "name": ["Ada", "Bea", "Cy"], "age": [None, None, None]}
    pq.write_table(pa.table({**people, "age": pa.nulls(3)}), os.path.join(d, "empty_column_pyarrow.parquet"))
    pd.DataFrame(people).to_parquet(os.path.join(d, "empty_column_pandas.parquet"), index=False)
    pl.DataFrame(people).write_parquet(os.path.join(d, "empty_column_polars.parquet"))
    pq.write_table(pa.table({**people, "age": pa.array([31, None, 40], pa.int64())}),
                   os.path.join(d, "age_typed.parquet"))
    others = {"id": ["q1", "q2", "q3"], "name": ["Di", "Ed", "Flo"], "age": pa.array([5, None, 7], pa.int64())}
    pq.write_table(pa.table(others), os.path.join(d, "others_typed.parquet"))


# The Thrift compact protocol of Parquet footers, just enough to find a field and rewrite it in
# place: corrupt files that pyarrow would refuse to write.
def _varint(buf, at):
    shift = value = 0
    while True:
        b = buf[at]
        value |= (b & 0x7F) << shift
        at += 1
        if not b & 0x80:
            return value, at
        shift += 7


def _zigzag(n):
    return (n >> 1) ^ -(n & 1)


def _unzigzag(n):
    return (n << 1) ^ (n >> 63)


def _skip(buf, at, kind, found, path):
    if kind in (1, 2):
        return at
    if kind == 3:
        return at + 1
    if kind in (4, 5, 6):
        start = at
        value, at = _varint(buf, at)
        found.append((tuple(path), start, at, _zigzag(value)))
        return at
    if kind == 7:
        return at + 8
    if kind == 8:
        size, at = _varint(buf, at)
        return at + size
    if kind in (9, 10):
        head = buf[at]
        at += 1
        size, elem = head >> 4, head & 0x0F
        if size == 15:
            size, at = _varint(buf, at)
        for i in range(size):
            at = _skip(buf, at, elem, found, path + [i])
        return at
    if kind == 11:
        size, at = _varint(buf, at)
        if size:
            types = buf[at]
            at += 1
            for _ in range(size):
                at = _skip(buf, at, types >> 4, found, path)
                at = _skip(buf, at, types & 0x0F, found, path)
        return at
    if kind == 12:
        last = 0
        while True:
            head = buf[at]
            at += 1
            if head == 0:
                return at
            delta, ftype = head >> 4, head & 0x0F
            if delta:
                fid = last + delta
            else:
                raw, at = _varint(buf, at)
                fid = _zigzag(raw)
            last = fid
            at = _skip(buf, at, ftype, found, path + [fid])
    raise ValueError(f"thrift type {kind}")


def patch_footer(path, field_path, new_value):
    """Rewrites one integer of the file's footer (by its path of field ids and list indices) in
    place, with a varint of the same length."""
    data = bytearray(open(path, "rb").read())
    footer_len = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer_len
    found = []
    _skip(bytes(data[start:len(data) - 8]), 0, 12, found, [])
    [(_, a, b, _old)] = [f for f in found if f[0] == tuple(field_path)]
    encoded = bytearray()
    n = _unzigzag(new_value) & ((1 << 64) - 1)
    while True:
        if n < 0x80:
            encoded.append(n)
            break
        encoded.append((n & 0x7F) | 0x80)
        n >>= 7
    assert len(encoded) == b - a, "the new value must encode to as many bytes as the old"
    data[start + a:start + b] = encoded
    open(path, "wb").write(bytes(data))


def break_file(path, how):
    if how == "negative_offset":
        # FileMetaData.row_groups[0].columns[0].meta_data.data_page_offset: 4 becomes -4,
        # which the parquet crate asserts against while reading.
        patch_footer(path, [4, 0, 1, 0, 3, 9], -4)
    elif how == "short_footer":
        # FileMetaData.num_rows: the file claims one row more than its row groups hold.
        rows = pq.read_metadata(path).num_rows
        patch_footer(path, [3], rows + 1)
    else:
        # Garbage over the header of every column's first data page, so that whichever columns
        # a mapping reads, the read breaks there.
        data = bytearray(open(path, "rb").read())
        group = pq.read_metadata(path).row_group(0)
        for i in range(group.num_columns):
            at = group.column(i).data_page_offset
            data[at:at + 12] = b"\xff" * 12
        open(path, "wb").write(bytes(data))


def split_and_break(table, folder, how, at):
    """`table` as two files of a snapshot: rows before `at`, good; the rest, broken `how`."""
    os.makedirs(folder, exist_ok=True)
    pq.write_table(table.slice(0, at), os.path.join(folder, "part-0.parquet"))
    broken = os.path.join(folder, "part-1.parquet")
    pq.write_table(table.slice(at), broken, use_dictionary=False, compression="snappy")
    break_file(broken, how)


def write_corrupt():
    """Snapshots that break part-way: a good file, then a broken one, in a folder each; and
    the same rows whole, for the runs before and after. (`corrupt/decoder_panic.parquet` is not
    written here: `cargo fuzz` made it out of these, see fuzz/ and tests/partial_reads.rs.)"""
    d = os.path.join(FIX, "corrupt")
    users = pa.Table.from_pylist(fixture_users(), USERS_SCHEMA)
    for how in ("negative_offset", "short_footer", "bad_page"):
        split_and_break(users, os.path.join(d, how), how, 30)
    # A suppression list (one column of emails) and the profiles' companies, broken alike.
    emails = pa.table({"email": users["email"]})
    pq.write_table(emails, os.path.join(d, "suppress_whole.parquet"))
    split_and_break(emails, os.path.join(d, "suppress"), "negative_offset", 30)
    companies = pq.read_table(os.path.join(FIX, "profiles", "companies.parquet"))
    split_and_break(companies, os.path.join(d, "companies"), "bad_page", 2)


GROUPS = {
    "samples": write_samples,
    "types": write_all_types,
    "users": lambda: write_writer_equivalence(fixture_users()),
    "profiles": write_profiles,
    "edges": write_edges,
    "corrupt": write_corrupt,
}


if __name__ == "__main__":
    import sys
    os.makedirs(FIX, exist_ok=True)
    for name in sys.argv[1:] or list(GROUPS):
        GROUPS[name]()
    print("wrote", ", ".join(sys.argv[1:] or list(GROUPS)))
