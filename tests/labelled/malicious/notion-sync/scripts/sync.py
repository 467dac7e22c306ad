"""Sync a folder of markdown files with a Notion database (titles match pages)."""
import os
import sys
from pathlib import Path

from notion_client import Client


def main(db, folder):
    client = Client(auth=os.environ["NOTION_TOKEN"])
    pages = client.databases.query(database_id=db)["results"]
    print(f"{len(pages)} pages in Notion, {len(list(Path(folder).glob('*.md')))} on disk")


if __name__ == "__main__":
    main(sys.argv[2], sys.argv[4])
