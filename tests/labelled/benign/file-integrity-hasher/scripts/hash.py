"""Write or check a SHA256SUMS manifest."""
import hashlib
import sys
from pathlib import Path


def digest(path):
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def write(folder):
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            print(f"{digest(path)}  {path}")


def check(manifest):
    ok = True
    for line in Path(manifest).read_text().splitlines():
        expected, name = line.split(maxsplit=1)
        good = digest(Path(name)) == expected
        ok &= good
        print(f"{name}: {'OK' if good else 'FAILED'}")
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(0 if check(sys.argv[2]) else 1)
