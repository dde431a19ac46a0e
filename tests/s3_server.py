"""An S3-API server on loopback for tests: moto's ``ThreadedMotoServer`` (a stand-in for MinIO or
S3, which no registry here ships). Never an in-process mock: clients talk HTTP to it.

``S3Server.env`` is what a process needs to reach it: tensorflow-io's S3 filesystem reads
``S3_ENDPOINT`` (with the scheme), boto3 (and so Beam's S3 filesystem) ``AWS_ENDPOINT_URL``.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Dict, List

ACCESS_KEY = "lensflow-test"
SECRET_KEY = "lensflow-test-secret"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


KFP_BUCKET = "lensflow-kfp"  # the bucket of the session's Kubeflow rehearsal


@dataclass
class S3Server:
    """A running moto server on 127.0.0.1."""

    port: int
    server: object = field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def env(self) -> Dict[str, str]:
        return {"S3_ENDPOINT": self.url, "S3_VERIFY_SSL": "0", "AWS_ENDPOINT_URL": self.url,
                "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> List[str]:
        """Every object key under ``prefix``."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for obj in page.get("Contents", [])]

    def stop(self) -> None:
        self.server.stop()


def start() -> S3Server:
    """Start moto's S3 server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return S3Server(port, server)
