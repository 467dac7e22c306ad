"""Fetch pages politely and print their titles."""
import sys
import time
import urllib.robotparser
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

AGENT = "polite-web-scraper/1.0 (+https://www.example.com/bot)"


class Title(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "title"

    def handle_data(self, data):
        if self.inside:
            self.text += data


def allowed(url):
    robots = urllib.robotparser.RobotFileParser(urljoin(url, "/robots.txt"))
    robots.read()
    return robots.can_fetch(AGENT, url)


def scrape(urls, delay):
    for url in urls:
        if not allowed(url):
            print(f"skip (robots.txt): {url}")
            continue
        page = requests.get(url, headers={"User-Agent": AGENT}, timeout=10)
        page.raise_for_status()
        parser = Title()
        parser.feed(page.text)
        print(url, parser.text.strip())
        time.sleep(delay)


if __name__ == "__main__":
    scrape([a for a in sys.argv[1:] if a.startswith("http")], 2.0)
