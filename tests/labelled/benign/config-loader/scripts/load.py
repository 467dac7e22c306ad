"""Load the skill's own config.yaml and apply environment overrides."""
import os
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def load():
    with CONFIG.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    for key in list(data):
        override = os.environ.get(f"CONFIG_LOADER_{key.upper()}")
        if override is not None:
            data[key] = override
    return data


if __name__ == "__main__":
    print(load())
