"""Wrap a file as base64 in a JSON body."""
import base64
import json
import mimetypes
import sys
from pathlib import Path


def body(path):
    data = path.read_bytes()
    return {
        "filename": path.name,
        "content_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        "content": base64.b64encode(data).decode("ascii"),
    }


if __name__ == "__main__":
    print(json.dumps(body(Path(sys.argv[1]))))
