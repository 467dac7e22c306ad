"""Caesar shift decoding for puzzles."""
import argparse
import string


def shift(text, n):
    lower, upper = string.ascii_lowercase, string.ascii_uppercase
    table = str.maketrans(lower + upper,
                          lower[n:] + lower[:n] + upper[n:] + upper[:n])
    return text.translate(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("text")
    parser.add_argument("--shift", type=int, default=13)
    args = parser.parse_args()
    print(shift(args.text, 26 - args.shift if args.shift != 13 else 13))
