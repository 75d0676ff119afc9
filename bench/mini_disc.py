"""Scores bench/mini_disc.sh's work directory: for each matcher, every query's best reference and
score, ranked over all queries; a prediction is right when the query is an edit of that reference
(the reference's name, mirrored or not). Prints micro average precision (DISC21's µAP: precision
averaged at each right prediction, over every query that has a reference) and the recall at
99.9 % precision (and at 100 %), with the best distractor score beside it."""
import os
import sys

work = sys.argv[1]


def name_of(path):
    """ref-life-3 for base/ref-life-3.png, base/ref-life-3.mirrored.png and query/ref-life-3--crop.png."""
    base = os.path.basename(path).split("--")[0]
    for suffix in (".mirrored.png", ".png", ".jpg"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def read_pdq(path):
    out = []
    for line in open(os.path.join(work, path)):
        cols = line.rstrip("\n").split("\t")
        if len(cols) >= 3:
            out.append((cols[2], int(cols[0], 16)))
    return out


refs = read_pdq("refs.pdq")
queries = read_pdq("queries.pdq")
truth_total = sum(1 for f, _ in queries if os.path.basename(f).startswith("ref-"))


def pdq(mirrored):
    rows = []
    for qfile, qh in queries:
        best = None
        for rfile, rh in refs:
            if not mirrored and rfile.endswith(".mirrored.png"):
                continue
            d = bin(qh ^ rh).count("1")
            if best is None or d < best[0]:
                best = (d, name_of(rfile))
        rows.append((256 - best[0], qfile, best[1]))
    return rows


def bank():
    rows = []
    for line in open(os.path.join(work, "bank.tsv")):
        cols = line.rstrip("\n").split("\t")
        qfile, clip, inliers = cols[0], cols[1] if len(cols) > 1 else "-", cols[2] if len(cols) > 2 else "0"
        rows.append((int(inliers or 0), qfile, clip))
    return rows


def views():
    rows = []
    path = os.path.join(work, "views.tsv")
    if not os.path.exists(path):
        return rows
    for line in open(path):
        qfile, label, margin = line.rstrip("\n").split("\t")
        rows.append((-int(margin), qfile, label))
    return rows


def score(rows):
    rows = sorted(rows, key=lambda r: -r[0])
    right = 0
    ap = 0.0
    recall_at = {0.999: 0.0, 1.0: 0.0}
    best_distractor = max((s for s, q, _ in rows if not os.path.basename(q).startswith("ref-")), default=0)
    for i, (s, q, predicted) in enumerate(rows, 1):
        ok = os.path.basename(q).startswith("ref-") and name_of(q) == predicted
        if ok:
            right += 1
            ap += right / i
        precision = right / i
        for p in recall_at:
            if precision >= p:
                recall_at[p] = max(recall_at[p], right / truth_total)
    return ap / truth_total, recall_at[0.999], recall_at[1.0], best_distractor


print(f"{truth_total} queries with a reference (20 references x 8 edits), "
      f"{len(queries) - truth_total} distractor queries (200 pictures x 8 edits)\n")
print("| matcher | µAP | recall at 99.9 % precision | recall at 100 % | best distractor score |")
print("|---|---|---|---|---|")
for name, rows in (("PDQ, whole picture", pdq(False)),
                   ("PDQ, references mirrored too", pdq(True)),
                   ("PDQ with the live views (-margin)", views()),
                   ("media bank (inliers)", bank())):
    if not rows:
        continue
    m, r999, r100, worst = score(rows)
    print(f"| {name} | {m:.3f} | {r999:.3f} | {r100:.3f} | {worst} |")
# Per edit, the media bank's and PDQ's recall at the operating points the gate uses.
print("\n| edit | PDQ ≤ 31 bits (right reference) | media bank ≥ 20 inliers (right clip) |")
print("|---|---|---|")
pdq_rows = {q: (s, p) for s, q, p in pdq(True)}
bank_rows = {q: (s, p) for s, q, p in bank()}
edits = sorted({os.path.basename(q).split("--")[1].rsplit(".", 1)[0] for q, _ in queries})
for e in edits:
    qs = [q for q, _ in queries if os.path.basename(q).startswith("ref-") and f"--{e}." in q]
    p_ok = sum(1 for q in qs if pdq_rows[q][0] >= 256 - 31 and pdq_rows[q][1] == name_of(q))
    b_ok = sum(1 for q in qs if bank_rows.get(q, (0, ""))[0] >= 20 and bank_rows[q][1] == name_of(q))
    dq = [q for q, _ in queries if not os.path.basename(q).startswith("ref-") and f"--{e}." in q]
    p_fp = sum(1 for q in dq if pdq_rows[q][0] >= 256 - 31)
    b_fp = sum(1 for q in dq if bank_rows.get(q, (0, ""))[0] >= 20)
    print(f"| {e} | {p_ok}/{len(qs)} ({p_fp} of {len(dq)} distractors) | {b_ok}/{len(qs)} ({b_fp} of {len(dq)} distractors) |")
