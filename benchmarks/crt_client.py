"""The s3transfer + AWS Common Runtime peer: one object down or up, as boto3 does with
``preferred_transfer_client="crt"`` (s3transfer's CRTTransferManager over awscrt's S3
client), against any endpoint. Keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

    python -m benchmarks.crt_client download ENDPOINT BUCKET KEY PATH
    python -m benchmarks.crt_client upload ENDPOINT BUCKET KEY PATH

What it verifies is s3transfer's default: uploads send a full-object CRC (the server checks
it), downloads check a stored checksum when the object has one (multipart objects made
without one have none).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crt_client")
    parser.add_argument("direction", choices=("download", "upload"))
    parser.add_argument("endpoint")
    parser.add_argument("bucket")
    parser.add_argument("key")
    parser.add_argument("path")
    args = parser.parse_args(argv)

    import botocore.session
    from awscrt.auth import AwsCredentialsProvider
    from botocore.config import Config
    from s3transfer.crt import (
        BotocoreCRTRequestSerializer,
        CRTTransferManager,
        create_s3_crt_client,
    )

    region = os.environ.get("AWS_REGION") or "us-east-1"
    session = botocore.session.Session()
    serializer = BotocoreCRTRequestSerializer(
        session,
        {
            "region_name": region,
            "endpoint_url": args.endpoint,
            "config": Config(s3={"addressing_style": "path"}),
        },
    )
    credentials = AwsCredentialsProvider.new_static(
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    client = create_s3_crt_client(region, credentials, use_ssl=args.endpoint.startswith("https://"))
    with CRTTransferManager(client, serializer) as manager:
        if args.direction == "download":
            future = manager.download(args.bucket, args.key, args.path)
        else:
            future = manager.upload(args.path, args.bucket, args.key)
        future.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
