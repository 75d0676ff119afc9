"""FAISS side of bench/matcher.sh: the same hashes and queries, one thread.

IndexBinaryFlat (exhaustive) and IndexBinaryMultiHash(256, 16, 16) (what HMA uses), range search
at distance <= RADIUS. Prints one Markdown row per index.
"""
import resource
import sys
import time

import faiss
import numpy as np

hashes_path, queries_path, radius = sys.argv[1], sys.argv[2], int(sys.argv[3])
faiss.omp_set_num_threads(1)
base = np.fromfile(hashes_path, dtype=np.uint8).reshape(-1, 32)
queries = np.fromfile(queries_path, dtype=np.uint8).reshape(-1, 32)
n = len(base)


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


for name, make in [
    ("FAISS IndexBinaryFlat", lambda: faiss.IndexBinaryFlat(256)),
    ("FAISS IndexBinaryMultiHash(256,16,16)", lambda: faiss.IndexBinaryMultiHash(256, 16, 16)),
]:
    before = rss_mib()
    t = time.perf_counter()
    index = make()
    if hasattr(index, "nflip"):
        index.nflip = radius // 16  # pigeonhole: exact at this radius
    index.add(base)
    build = time.perf_counter() - t
    grown = rss_mib() - before
    t = time.perf_counter()
    lims, dists, ids = index.range_search(queries, radius + 1)  # FAISS keeps distance < radius
    per_query = (time.perf_counter() - t) / len(queries) * 1000
    print(f"| {name} | {n:,} | {per_query:.3f} | {1000 / per_query:,.0f} | {build:.1f} | {grown:,.0f} | {len(ids):,} |")
    del index
