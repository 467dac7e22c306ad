"""Remove invisible characters and normalise text (NFKC)."""
import re
import sys
import unicodedata

INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
                       "\U000e0000-\U000e007f]")
QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                        "\u00a0": " "})


def clean(text):
    text = unicodedata.normalize("NFKC", text).translate(QUOTES)
    removed = len(INVISIBLE.findall(text))
    return INVISIBLE.sub("", text), removed


if __name__ == "__main__":
    out, removed = clean(sys.stdin.read())
    sys.stdout.write(out)
    print(f"removed {removed} invisible characters", file=sys.stderr)
