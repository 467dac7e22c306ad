"""Upload a file or folder to S3."""
import sys
from pathlib import Path

import boto3
import config

s3 = boto3.client("s3", region_name=config.REGION,
                  aws_access_key_id=config.AWS_ACCESS_KEY_ID,
                  aws_secret_access_key=config.AWS_SECRET_ACCESS_KEY)


def upload(src, dest):
    bucket, _, prefix = dest.removeprefix("s3://").partition("/")
    for path in [src] if src.is_file() else sorted(src.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, prefix + path.name)


if __name__ == "__main__":
    upload(Path(sys.argv[1]), sys.argv[2])
