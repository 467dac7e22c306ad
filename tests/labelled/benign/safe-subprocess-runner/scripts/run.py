"""Run a named project task without a shell."""
import subprocess
import sys

TASKS = {
    "test": ["python3", "-m", "pytest", "-q"],
    "lint": ["ruff", "check", "."],
    "format": ["ruff", "format", "."],
}


def run(name):
    argv = TASKS[name]
    try:
        result = subprocess.run(argv, check=False, timeout=600)
    except subprocess.TimeoutExpired:
        print(f"{name}: timed out after 600 s", file=sys.stderr)
        return 124
    return result.returncode


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in TASKS:
        sys.exit(f"usage: run.py {{{','.join(TASKS)}}}")
    sys.exit(run(sys.argv[1]))
