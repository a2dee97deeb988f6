"""Writes test/golden/tar/: small tar archives made by Python's tarfile (as img2dataset / webdataset write them,
and in its GNU and ustar formats) and by GNU tar, with what tarfile reads back from each (expected.json): the
regular members in archive order (a name stored twice keeps its last copy), data offset, size, mtime in ms, SHA-256.

    /usr/bin/python3 tools/golden/make_tar_goldens.py

Deterministic: fixed mtimes, owners and member bytes (tiny PNG/JPEG images drawn with PIL), GNU tar run with
--sort=name --mtime --owner/--group --numeric-owner and a fixed tz.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "test", "golden", "tar")


def image(i, fmt):
    img = Image.new("RGB", (8 + i, 6 + i))
    img.putdata([((x * 37 + i * 11) % 256, (x * 91) % 256, (x * 13 + 50) % 256) for x in range(img.width * img.height)])
    b = io.BytesIO()
    img.save(b, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return b.getvalue()


def samples(n):
    """What img2dataset writes per sample: the image, its caption, its metadata."""
    out = []
    for i in range(n):
        key = f"{i:09d}"
        fmt = "JPEG" if i % 2 == 0 else "PNG"
        out.append((f"{key}.{'jpg' if fmt == 'JPEG' else 'png'}", image(i, fmt)))
        out.append((f"{key}.txt", f"caption number {i}".encode()))
        out.append((f"{key}.json", json.dumps({"key": key, "caption": f"caption number {i}", "width": 8 + i}).encode()))
    return out


def add(tar, name, data, mtime, type_=tarfile.REGTYPE, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.size = len(data) if type_ == tarfile.REGTYPE else 0
    ti.mtime = mtime
    ti.type = type_
    ti.linkname = linkname
    ti.mode = 0o644 if type_ != tarfile.DIRTYPE else 0o755
    ti.uname = ti.gname = "clip"
    tar.addfile(ti, io.BytesIO(data) if type_ == tarfile.REGTYPE else None)


def python_tars():
    # webdataset's TarWriter: tarfile's default (pax) format, mtime = time.time(), a float: a pax header each.
    with tarfile.open(os.path.join(OUT, "webdataset_pax.tar"), "w") as t:
        for j, (name, data) in enumerate(samples(4)):
            add(t, name, data, 1700000000.25 + j * 0.125)
    # GNU format: a 'L' long name, a directory and a symlink (skipped), a name stored twice (the last counts).
    with tarfile.open(os.path.join(OUT, "python_gnu.tar"), "w", format=tarfile.GNU_FORMAT) as t:
        long = "deep/" + "d" * 60 + "/" + "n" * 80 + "/000000000.jpg"
        add(t, "deep/", b"", 1600000000, tarfile.DIRTYPE)
        add(t, long, image(0, "JPEG"), 1600000001)
        add(t, "a.png", image(1, "PNG"), 1600000002)
        add(t, "link.png", b"", 1600000003, tarfile.SYMTYPE, "a.png")
        add(t, "b.txt", b"first copy", 1600000004)
        add(t, "c.txt", b"", 1600000005)
        add(t, "b.txt", b"second, longer copy", 1600000006)
    # ustar: a 150-character path split into prefix and name.
    with tarfile.open(os.path.join(OUT, "python_ustar.tar"), "w", format=tarfile.USTAR_FORMAT) as t:
        add(t, "p" * 70 + "/" + "q" * 50 + "/img-with-a-fairly-long-name.jpg", image(2, "JPEG"), 1500000000)
        add(t, "x.txt", b"x" * 1000, 1500000001)
    # pax: a long non-ASCII path (a pax path record), a float mtime.
    with tarfile.open(os.path.join(OUT, "python_pax_unicode.tar"), "w", format=tarfile.PAX_FORMAT) as t:
        add(t, "фото/" + "été-" * 40 + "снимок.png", image(3, "PNG"), 1234567890.5)
        add(t, "plain.jpg", image(4, "JPEG"), 1234567891)


def gnu_tars():
    if shutil.which("tar") is None:
        print("GNU tar not found: skipping its archives")
        return
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "shard")
        long_dir = os.path.join(src, "sub", "l" * 120)
        os.makedirs(long_dir)
        for name, data in samples(2):
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
        with open(os.path.join(long_dir, "000000005.png"), "wb") as f:
            f.write(image(5, "PNG"))
        env = dict(os.environ, TZ="UTC", LC_ALL="C")
        for fmt in ["gnu", "posix"]:
            out = os.path.join(OUT, f"gnutar_{fmt}.tar")
            extra = ["--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"] if fmt == "posix" else []
            subprocess.run(["tar", f"--format={fmt}", *extra, "--sort=name", "--mtime=2021-01-01 00:00:00", "--owner=0", "--group=0",
                            "--numeric-owner", "-C", src, "-cf", out, "."], check=True, env=env)


def expected():
    out = {}
    for name in sorted(os.listdir(OUT)):
        if not name.endswith(".tar"):
            continue
        path = os.path.join(OUT, name)
        members = {}
        with tarfile.open(path, "r") as t:
            for m in t.getmembers():
                if not m.isreg():
                    continue
                data = t.extractfile(m).read()
                members.pop(m.name, None)
                members[m.name] = {"name": m.name, "offset": m.offset_data, "size": m.size, "mtimeMs": m.mtime * 1000,
                                   "sha256": hashlib.sha256(data).hexdigest()}
        out[name] = {"bytes": os.path.getsize(path), "members": list(members.values())}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for n in os.listdir(OUT):
        os.remove(os.path.join(OUT, n))
    python_tars()
    gnu_tars()
    expected()
    print("\n".join(f"{n}: {os.path.getsize(os.path.join(OUT, n))} bytes" for n in sorted(os.listdir(OUT))))
