"""Generate passwords and passphrases with the secrets module."""
import argparse
import secrets
import string

WORDS = ["copper", "lantern", "orbit", "meadow", "falcon", "quartz", "harbor", "velvet",
         "summit", "pepper", "glacier", "thistle", "ember", "canyon", "willow", "marble"]


def password(length):
    alphabet = string.ascii_letters + string.digits + "-_.!@#"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def passphrase(words):
    return "-".join(secrets.choice(WORDS) for _ in range(words))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--words", type=int)
    args = parser.parse_args()
    print(passphrase(args.words) if args.words else password(args.length))
