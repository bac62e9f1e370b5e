#!/usr/bin/env python3
"""The read path, both ways, for `npm run bench` (export_ratio=).

  export_read.py BASE_URL SEED_DB REPS [--parallel]

ours: a client downloads the four .npy exports from the running Worker
(GET BASE_URL/export/{train,train-labels,test,test-labels}.npy, redirects
followed) and loads each with np.load. The Worker streams them from the files
materialised in R2 after the load: the untimed first round checks that every
response says X-Export-Source: r2 (the D1-read path is not what is timed).
seed: the original script's users read the same arrays out of its SQLite file
(tables train/test: id INTEGER PRIMARY KEY, image BLOB, label INTEGER) with
sqlite3 and np.frombuffer.

Both in this one process, alternating (which goes first alternates too), REPS
times each after one untimed round of each. The first round also checks that
both ways return bit-identical arrays. Prints one JSON line.
With --parallel, ours downloads the four files at once (four threads).
"""
import io, json, sqlite3, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
import numpy as np

FILES = ("train", "train-labels", "test", "test-labels")


def fetch(base, name, check=False):
    with urllib.request.urlopen(f"{base}/export/{name}.npy", timeout=600) as res:
        body = res.read()
        source = res.headers.get("X-Export-Source")
    if check and source != "r2":
        raise SystemExit(f"{name}.npy: served from {source or '(no X-Export-Source header)'}, not from R2")
    return np.load(io.BytesIO(body), allow_pickle=False)


def ours(base, parallel, check=False):
    if parallel:
        with ThreadPoolExecutor(len(FILES)) as pool:
            arrays = list(pool.map(lambda n: fetch(base, n, check), FILES))
    else:
        arrays = [fetch(base, n, check) for n in FILES]
    return dict(zip(FILES, arrays))


def seed(db):
    con = sqlite3.connect(db)
    out = {}
    for split in ("train", "test"):
        rows = con.execute(f"SELECT image, label FROM {split} ORDER BY id").fetchall()
        out[split] = np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(-1, 28, 28, 1)
        out[f"{split}-labels"] = np.array([r[1] for r in rows], dtype=np.uint8)
    con.close()
    return out


def timed(f, *args):
    t0 = time.perf_counter()
    r = f(*args)
    return time.perf_counter() - t0, r


def main():
    base, db, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parallel = "--parallel" in sys.argv[4:]
    # Untimed first round of each, the check that ours is read from R2, and that both read the same arrays.
    a = ours(base, parallel, check=True)
    b = seed(db)
    for k in FILES:
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes():
            raise SystemExit(f"{k}: export {a[k].dtype}{a[k].shape} differs from the seed's {b[k].dtype}{b[k].shape}")
    del a, b
    times = {"ours": [], "seed": []}
    for i in range(reps):
        order = ("seed", "ours") if i % 2 == 0 else ("ours", "seed")
        for who in order:
            t, r = timed(ours, base, parallel) if who == "ours" else timed(seed, db)
            del r
            times[who].append(t)
    print(json.dumps({**times, "bytes": sum(x.nbytes for x in seed(db).values())}))


if __name__ == "__main__":
    main()
