"""Report which environment variables are set, without their values."""
import os
import sys


def describe(value):
    if value is None:
        return "missing"
    return "empty" if value == "" else f"set ({len(value)} chars)"


def report(patterns):
    names = sorted({k for k in os.environ for p in patterns if k.startswith(p)}
                   | {p for p in patterns if not p.endswith("_")})
    for name in names:
        print(f"{name:30} {describe(os.environ.get(name))}")


if __name__ == "__main__":
    report(sys.argv[1:])
