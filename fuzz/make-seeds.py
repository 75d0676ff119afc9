#!/usr/bin/env python3
"""Makes the fuzz targets' seed corpora (fuzz/seeds/TARGET/) from real sessions: ffmpeg
publishing a short synthetic clip to nginx-rtmp on loopback through a recording forwarder,
FLV tags of clips ffmpeg encodes, the shipped config and lists, tiny images.

Run from the repository root once the tools are installed (`make deps`); the seeds are
committed, so this is for refreshing them. Needs ffmpeg, nginx with the RTMP module."""
import os, shutil, socket, struct, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
tmp = tempfile.mkdtemp(prefix="hashgate-seeds-")


def put(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def clip(name, vcodec_args, seconds=1, size="96x64"):
    path = os.path.join(tmp, name)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds)]
        + vcodec_args + ["-c:a", "aac", "-b:a", "32k", "-f", "flv", path],
        check=True)
    return path


def flv_tags(path):
    data = open(path, "rb").read()
    pos = 9 + 4
    while pos + 11 <= len(data):
        kind = data[pos]
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        body = data[pos + 11:pos + 11 + size]
        yield kind, body
        pos += 11 + size + 4


def record_session(flv):
    """Client-to-server bytes of ffmpeg publishing `flv` to nginx-rtmp."""
    nginx_port, fwd_port = free_port(), free_port()
    ndir = os.path.join(tmp, "nginx")
    os.makedirs(ndir, exist_ok=True)
    open(os.path.join(ndir, "nginx.conf"), "w").write(f"""daemon off; master_process off;
error_log {ndir}/error.log; pid {ndir}/nginx.pid;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{nginx_port}; application live {{ live on; }} }} }}
""")
    nginx = subprocess.Popen(["nginx", "-p", ndir, "-c", os.path.join(ndir, "nginx.conf")])
    time.sleep(0.5)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", fwd_port))
    listener.listen(1)
    recorded = bytearray()

    def forward():
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", nginx_port))

        def back():
            while (chunk := upstream.recv(65536)):
                client.sendall(chunk)
        threading.Thread(target=back, daemon=True).start()
        while (chunk := client.recv(65536)):
            recorded.extend(chunk)
            upstream.sendall(chunk)
        upstream.close()

    t = threading.Thread(target=forward, daemon=True)
    t.start()
    subprocess.run(["ffmpeg", "-v", "error", "-re", "-i", flv, "-c", "copy", "-f", "flv",
                    f"rtmp://127.0.0.1:{fwd_port}/live/seed?token=x"], check=True, timeout=30)
    t.join(5)
    nginx.terminate()
    nginx.wait()
    return bytes(recorded)


def chunks_messages(stream):
    """(type, payload) of the messages in a client's chunk stream (after the handshake)."""
    pos, chunk_size, heads, partial, out = 0, 128, {}, {}, []
    while pos < len(stream):
        b = stream[pos]; fmt, csid = b >> 6, b & 0x3F; pos += 1
        if csid == 0: csid = 64 + stream[pos]; pos += 1
        elif csid == 1: csid = 64 + stream[pos] + 256 * stream[pos + 1]; pos += 2
        h = heads.setdefault(csid, {"len": 0, "type": 0})
        if fmt <= 2:
            ts = int.from_bytes(stream[pos:pos + 3], "big"); pos += 3
        if fmt <= 1:
            h["len"] = int.from_bytes(stream[pos:pos + 3], "big"); h["type"] = stream[pos + 3]; pos += 4
        if fmt == 0:
            pos += 4
        if fmt <= 2 and ts == 0xFFFFFF:
            pos += 4
        have = partial.get(csid, b"")
        take = min(chunk_size, h["len"] - len(have))
        have += stream[pos:pos + take]; pos += take
        if len(have) == h["len"]:
            out.append((h["type"], have)); partial[csid] = b""
            if h["type"] == 1:
                chunk_size = int.from_bytes(have[:4], "big") & 0x7FFFFFFF
        else:
            partial[csid] = have
    return out


h264 = clip("h264.flv", ["-c:v", "libx264", "-g", "5", "-bf", "2", "-pix_fmt", "yuv420p"])
session = record_session(h264)
handshake, after = session[:3073], session[3073:]
put("handshake", "ffmpeg-plain", handshake)
put("session", "ffmpeg-publish", after[:60000])
put("chunk", "ffmpeg-publish", bytes([128]) + after[:60000])
put("chunk", "ffmpeg-publish-small-pieces", bytes([7]) + after[:20000])
messages = chunks_messages(after)
for i, (kind, body) in enumerate(m for m in messages if m[0] in (18, 20)):
    put("amf0", f"command-{i}", body)
for i, (kind, body) in enumerate(m for m in messages if m[0] in (8, 9)):
    if i < 12:
        put("media_tags", f"{'video' if kind == 9 else 'audio'}-{i}", body[:64])

# Records and frames: the sequence header's avcC, then frames with 2-byte lengths.
for name, args in [("h264", None), ("hevc", ["-c:v", "libx265", "-x265-params", "log-level=none", "-g", "5"])]:
    path = h264 if args is None else None
    if args is not None:
        try:
            path = clip("hevc.flv", args)
        except subprocess.CalledProcessError:
            print("no HEVC in this FFmpeg's FLV muxer: skipped", file=sys.stderr)
            continue
    video = [body for kind, body in flv_tags(path) if kind == 9]
    record, frames = video[0][5:], [v[5:] for v in video[1:6]]
    hevc = 1 if name == "hevc" else 0
    put("codec_config", f"{name}-record-and-idr", bytes([hevc | (4 << 1)]) + struct.pack(">H", len(record)) + record + frames[0])
    framed = b"".join(struct.pack(">H", len(f) | 0x8000 if len(f) < 0x8000 else len(f)) + f for f in frames if len(f) < 0x7FFF)
    put("decoder", f"{name}", bytes([hevc, min(len(record), 255)]) + record[:255] + framed)

# HEVC: Debian's FFmpeg 5.1 writes no HEVC into FLV; the record comes from an MP4's hvcC box.
mp4 = os.path.join(tmp, "hevc.mp4")
subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10", "-t", "1",
                "-c:v", "libx265", "-x265-params", "log-level=none", mp4], check=True)
data = open(mp4, "rb").read()
at = data.find(b"hvcC")
size = int.from_bytes(data[at - 4:at], "big")
hvcc = data[at + 4:at - 4 + size]
put("codec_config", "hevc-record", bytes([1 | (4 << 1)]) + struct.pack(">H", len(hvcc)) + hvcc)
put("decoder", "hevc-record", bytes([1, min(len(hvcc), 255)]) + hvcc[:255])
# Enhanced RTMP video tags: sequence start, coded frames, multitrack, ModEx, metadata.
for name, tag in [("ertmp-hevc-start", b"\x90hvc1" + hvcc[:40]), ("ertmp-hevc-frames", b"\x91hvc1\x00\x00\x21" + bytes(16)),
                  ("ertmp-av1-framesx", b"\xa3av01" + bytes(12)), ("ertmp-multitrack", b"\x96\x01avc1\x00\x00\x00\x10" + bytes(8)),
                  ("ertmp-modex", b"\x97avc1\x00\x03\x00\x00\x00" + bytes(8)), ("ertmp-metadata", b"\x94vp09\x02\x00\x0bcolorInfo")]:
    put("media_tags", name, tag)

os.makedirs(os.path.join(SEEDS, "config"), exist_ok=True)
shutil.copy(os.path.join(ROOT, "config.toml"), os.path.join(SEEDS, "config", "shipped.toml"))
put("config", "demo.toml", open(os.path.join(ROOT, "samples", "demo.toml"), "rb").read())
put("lists", "flagged-pdq", bytes([0]) + open(os.path.join(ROOT, "samples", "flagged.pdq"), "rb").read()[:4000])
pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
put("lists", "tsv", bytes([2]) + f"{pdq}\t100\tknown clip\n# comment\n{pdq[::-1]}\t90\n".encode())
put("lists", "csv", bytes([4]) + f"hash,quality,label\n{pdq},100,te-1\n".encode())
put("lists", "vpdq", bytes([3]) + f"0,{pdq},100,0.000\n1,{pdq},100,1.000\n".encode())
put("lists", "hex-dhash", bytes([1 + 12]) + b"ffeeddccbbaa9988\n0011223344556677\n")
put("lists", "chromaprint", bytes([18]) + b"clip-a\t1.0\t" + b",".join(str(x).encode() for x in range(1000, 1040)) + b"\n")
put("lists", "chromaprint-speeds", bytes([18]) + b"FILE=a.mp4\nDURATION=5.00\nSPEED=0.95\nFINGERPRINT=1,2,3,4\nFILE=a.mp4\nDURATION=4.75\nFINGERPRINT=5,6,7\nFILE=a.mp4\nSPEED=1.05\nFINGERPRINT=8,9\n")
for ext in ["png", "jpg", "gif", "bmp", "webp", "tiff", "pgm"]:
    path = os.path.join(tmp, f"tiny.{ext}")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=24x16", "-frames:v", "1", path], check=True)
    put("image", f"tiny-{ext}", open(path, "rb").read())

# Media bank files, without the SHA-256 trailer (the target seals each input itself): one clip,
# two frames of 40 features, the second the first moved 5 px (so a search pairs them).
import random
rng = random.Random(7)
feats = [(rng.randrange(20, 490), rng.randrange(20, 270), [rng.getrandbits(64) for _ in range(4)]) for _ in range(40)]
body = b"HGBANK\0\x01" + struct.pack("<III", 1, 1, 2)
for text in (b"incident", b"clip.mp4"):
    body += struct.pack("<H", len(text)) + text
for shift in (0, 5):
    body += struct.pack("<IIHHI", 0, shift * 100, 512, 288, len(feats))
    for x, y, d in feats:
        body += struct.pack("<HH4Q", x + shift, y, *d)
put("bank", "two-frames", body)
put("bank", "empty", b"HGBANK\0\x01" + struct.pack("<III", 1, 0, 0))
shutil.rmtree(tmp)
print("seeds written under", SEEDS)
