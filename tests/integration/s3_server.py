"""An S3 server on loopback for archive tests, and a guard that keeps every socket on loopback.

``LoopbackS3`` runs moto's S3 in a thread of this process on ``127.0.0.1`` (any free port) and
gives a boto3 client for checking what really landed in a bucket. ``LoopbackOnly`` wraps
``socket.getaddrinfo`` and ``socket.socket.connect``/``connect_ex`` so that nothing in the
process (botocore, aiobotocore, requests, the instance metadata service lookup...) can reach a
non-loopback address while it is installed: such attempts are refused and recorded.

moto, boto3 and botocore are imported on use, so importing this module never needs the s3 extra.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: Any) -> bool:
    if host is None or host == b"" or host == "":
        return True  # getaddrinfo(None, port): the local wildcard/loopback address
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class LoopbackOnly:
    """Refuse (and record) any DNS lookup or connection to a non-loopback address."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.contacted: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._saved: dict[str, Any] = {}

    def _check(self, what: str, host: Any, port: Any) -> None:
        if is_loopback(host):
            if what == "connect":
                with self._lock:
                    self.contacted.add((str(host), int(port)))
            return
        with self._lock:
            self.refused.append(f"{what} {host!r}:{port!r}")
        raise ConnectionRefusedError(f"test network guard: {what} to non-loopback {host!r}:{port!r} refused")

    def install(self) -> LoopbackOnly:
        if self._saved:
            return self
        real_getaddrinfo: Callable[..., Any] = socket.getaddrinfo
        real_connect: Callable[..., Any] = socket.socket.connect
        real_connect_ex: Callable[..., Any] = socket.socket.connect_ex
        guard = self

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            guard._check("resolve", host, port)
            return real_getaddrinfo(host, port, *args, **kwargs)

        def _address_check(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard._check("connect", address[0], address[1])

        def connect(sock: socket.socket, address: Any) -> Any:
            _address_check(sock, address)
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            _address_check(sock, address)
            return real_connect_ex(sock, address)

        self._saved = {"getaddrinfo": real_getaddrinfo, "connect": real_connect, "connect_ex": real_connect_ex}
        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        return self

    def uninstall(self) -> None:
        if not self._saved:
            return
        socket.getaddrinfo = self._saved["getaddrinfo"]
        socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign]
        self._saved = {}


class LoopbackS3:
    """moto's S3 on ``127.0.0.1`` in a background thread, plus boto3 helpers for assertions."""

    def __init__(self) -> None:
        self._server: Any = None
        self.port = 0
        self._client: Any = None

    def start(self) -> LoopbackS3:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        host, self.port = server.get_host_and_port()
        assert host == "127.0.0.1", host
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LoopbackS3:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def airflow_connection_json(self) -> str:
        """An Airflow AWS connection (for ``AIRFLOW_CONN_<ID>``) whose S3 calls go to this server only."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"region_name": REGION, "endpoint_url": self.endpoint_url},
            }
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
            )
        return self._client

    # ----- buckets and objects ------------------------------------------------------------

    def new_bucket(self, prefix: str = "archive", *, versioned: bool = True) -> str:
        """A fresh bucket. Versioned by default, so every object ever written stays visible."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        if versioned:
            self.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def bucket_names(self) -> list[str]:
        return sorted(b["Name"] for b in self.client.list_buckets().get("Buckets", []))

    def keys(self, bucket: str) -> list[str]:
        """Keys of the objects currently in ``bucket``."""
        paginator = self.client.get_paginator("list_objects_v2")
        return sorted(obj["Key"] for page in paginator.paginate(Bucket=bucket) for obj in page.get("Contents", []))

    def history(self, bucket: str) -> list[tuple[str, int]]:
        """``(key, size)`` of every object version ever written (oldest last per key), and delete markers as -1."""
        answer = self.client.list_object_versions(Bucket=bucket)
        versions = [(v["Key"], int(v["Size"])) for v in answer.get("Versions", [])]
        markers = [(m["Key"], -1) for m in answer.get("DeleteMarkers", [])]
        return sorted(versions + markers)

    def open_multipart_uploads(self, bucket: str) -> list[str]:
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body)
