"""The local S3 server the storage and cluster tests build on: a real HTTP server, stopped by group."""

from __future__ import annotations

import os

import pytest
from pyarrow import fs

from harness.s3server import S3Server


def test_s3_fixture_serves_a_fresh_bucket_over_http(s3, monkeypatch):
    s3.fs.create_dir(f"{s3.bucket}/probe")
    with s3.fs.open_output_stream(f"{s3.bucket}/probe/hello.txt") as out:
        out.write(b"hi")
    assert s3.keys("probe") == ["probe/hello.txt"]
    # A URI as a user passes it, read by a client of its own (credentials from the environment).
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    filesystem, path = fs.FileSystem.from_uri(s3.uri("probe/hello.txt"))
    assert path == f"{s3.bucket}/probe/hello.txt"
    with filesystem.open_input_stream(path) as stream:
        assert stream.read() == b"hi"


def test_s3_server_stop_ends_its_process_group():
    server = S3Server().start()
    pid = server.proc.pid
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
