"""A real local S3 server for tests: `moto_server` on 127.0.0.1, one fresh bucket, stopped by its group.

Usage (see the `s3` fixture in tests/conftest.py):

    with S3Server() as s3:
        s3.uri("exp")     # s3://<bucket>/exp?endpoint_override=127.0.0.1:<port>&scheme=http&region=us-east-1
        s3.env            # AWS_* variables every process that talks to the server needs
        s3.fs             # pyarrow S3FileSystem on the server (paths are "<bucket>/...")

Nothing here mocks S3 inside the test process: every client (the driver, Ray's workers, pyarrow) talks
HTTP to the server process, as it would to a real store. The credentials are dummies moto accepts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "tunelab-test-key",
    "AWS_SECRET_ACCESS_KEY": "tunelab-test-secret",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # Without this, an AWS client with no credentials file probes the EC2 metadata service and waits.
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """moto_server in its own process group, with one bucket created over the S3 protocol."""

    def __init__(self, bucket: str | None = None, log: Path | None = None):
        self.port = free_port()
        self.bucket = bucket or f"tunelab-{uuid.uuid4().hex[:12]}"  # a valid S3 name: lowercase, 3-63
        self.endpoint = f"127.0.0.1:{self.port}"
        self.env = dict(CREDENTIALS)
        self.log = log
        self.proc: subprocess.Popen | None = None

    def uri(self, path: str = "") -> str:
        """s3:// URI of `path` in the bucket, with the options pyarrow and Ray need to reach the server."""
        key = f"/{path.strip('/')}" if path.strip("/") else ""
        return f"s3://{self.bucket}{key}?endpoint_override={self.endpoint}&scheme=http&region={REGION}"

    @property
    def fs(self):
        from pyarrow import fs

        return fs.S3FileSystem(access_key=self.env["AWS_ACCESS_KEY_ID"],
                               secret_key=self.env["AWS_SECRET_ACCESS_KEY"], region=REGION,
                               endpoint_override=self.endpoint, scheme="http",
                               allow_bucket_creation=True)

    def start(self, timeout: float = 60.0) -> S3Server:
        moto = Path(sys.executable).with_name("moto_server")
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        # start_new_session: setsid, so stop() ends exactly this server and whatever it forked.
        self.proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **self.env})
        try:
            self._wait(timeout)
            self.fs.create_dir(self.bucket)  # CreateBucket over HTTP
        except BaseException:
            self.stop()  # a server that never became usable is not left running
            raise
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with status {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint} "
                                       f"in {timeout:.0f} s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def location(self, path: str = ""):
        """store's Location of `path` in the bucket, reached with this server's own credentials (the
        test process need not have them in its environment)."""
        from store.fs import Location

        key = f"{self.bucket}/{path.strip('/')}".rstrip("/")
        return Location(self.fs, key, f"s3://{key}", self.uri(path).split("?", 1)[1])

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix` in the bucket (relative to the bucket)."""
        from pyarrow import fs

        base = f"{self.bucket}/{prefix.strip('/')}".rstrip("/")
        infos = self.fs.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(self.bucket) + 1:] for i in infos if i.type == fs.FileType.File)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
