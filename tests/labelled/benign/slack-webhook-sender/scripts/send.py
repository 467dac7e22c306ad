"""Post a message to the user's Slack incoming webhook."""
import json
import os
import sys
import urllib.request


def send(text):
    url = os.environ["SLACK_WEBHOOK_URL"]
    req = urllib.request.Request(url, data=json.dumps({"text": text}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


if __name__ == "__main__":
    print(send(" ".join(sys.argv[1:])))
