"""A `--storage` value -> (pyarrow FileSystem, path), and the few operations tunelab needs on it.

One code path for every store: a local or NFS folder goes through pyarrow's LocalFileSystem, a URI
(`s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http`, `gs://…`, `abfs://…`) through the
FileSystem pyarrow builds for it, the same string Ray Tune gets as `RunConfig(storage_path=…)`.

Credentials come from the store's own configuration (AWS_* variables, ~/.aws, the GCP/Azure
defaults); a URI that carries one is refused, so no plan, log or report can ever hold it.
Facts this module relies on are in docs/storage.md.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from pyarrow import ArrowInvalid
from pyarrow import fs as pafs


class StorageError(ValueError):
    """Storage that cannot work (unknown scheme, missing bucket, endpoint down): one line for the user."""


# Options of a URI that are credentials: refused, they would end up in Ray's state and our plan.
SECRET_OPTIONS = {"access_key", "secret_key", "session_token", "account_key", "sas_token",
                  "client_secret", "password"}
# The URI options tunelab passes on when it builds an S3 filesystem itself (pyarrow's from_uri names).
S3_OPTIONS = {"region", "scheme", "endpoint_override", "force_virtual_addressing"}
# Our own S3 calls give up within seconds on an endpoint that does not answer (pyarrow's defaults wait
# minutes with 3 retries); Ray's own client, built from the same URI, keeps pyarrow's defaults.
CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Location:
    """A file or folder on a store: `fs` and `path` for pyarrow, `uri` for people and for Ray."""

    fs: pafs.FileSystem = field(repr=False)
    path: str
    base: str
    """The address without its ?options: an absolute local path, or scheme://authority/path."""
    query: str = ""

    @property
    def uri(self) -> str:
        return f"{self.base}?{self.query}" if self.query else self.base

    def __str__(self) -> str:
        return self.uri

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(self.fs, self.path.rstrip("/").rsplit("/", 1)[0],
                        self.base.rstrip("/").rsplit("/", 1)[0], self.query)

    def __truediv__(self, name: str) -> Location:
        name = name.strip("/")
        return Location(self.fs, f"{self.path.rstrip('/')}/{name}", f"{self.base.rstrip('/')}/{name}",
                        self.query)

    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def mtime(self) -> float | None:
        """Seconds since the epoch of the last write; None for an object store's folder (a prefix)."""
        when = self.info().mtime
        return when.timestamp() if when is not None else None

    def children(self) -> list[pafs.FileInfo]:
        if not self.is_dir():
            return []
        return self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))

    def list_dirs(self) -> list[Location]:
        """The sub-folders, by name."""
        return sorted((self / i.base_name for i in self.children() if i.type == pafs.FileType.Directory),
                      key=lambda loc: loc.name)

    def list_files(self) -> list[Location]:
        return sorted((self / i.base_name for i in self.children() if i.type == pafs.FileType.File),
                      key=lambda loc: loc.name)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def makedirs(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def write_bytes(self, data: bytes) -> None:
        """Readers see the old content or the whole new one, never part of it: on an object store a
        PUT appears whole; on a folder the bytes go to a temporary name that is then renamed."""
        self.parent.makedirs()
        if not self.local:
            with self.fs.open_output_stream(self.path) as out:
                out.write(data)
            return
        partial = f"{self.path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(partial) as out:
            out.write(data)
        self.fs.move(partial, self.path)  # rename(2): atomic on a local disk and on NFS

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def create_if_absent(self, data: bytes) -> bool:
        """Writes `data` unless the file exists; True when this call wrote it. Two racing writers may
        both write, which is harmless for content that is a pure function of the name (the logit
        cache): each write is whole (write_bytes), so readers never see a partial file."""
        if self.exists():
            return False
        self.write_bytes(data)
        return True

    def delete(self) -> None:
        self.fs.delete_file(self.path)

    def download(self, dest: Path) -> Path:
        """A local copy of this folder (the folder itself when it is local already)."""
        if self.local:
            return Path(self.path)
        dest.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(self.path, str(dest), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        return dest

    def check_reachable(self) -> None:
        """StorageError unless the store answers and its bucket/container exists (no-op for a folder)."""
        if self.local:
            return
        bucket = self.path.split("/", 1)[0]
        try:
            found = self.fs.get_file_info(bucket).type != pafs.FileType.NotFound
        except OSError as err:
            raise StorageError(f"storage {self.uri} does not answer ({_first_line(err)})") from None
        if not found:
            raise StorageError(f"storage {self.uri}: bucket '{bucket}' does not exist")

    def check_writable(self) -> None:
        """StorageError unless a probe file can be written (and is removed again) here."""
        self.check_reachable()
        probe = self / f".tunelab-probe-{uuid.uuid4().hex[:12]}"
        try:
            self.makedirs()
            probe.write_bytes(b"")
            probe.delete()
        except OSError as err:
            raise StorageError(f"storage {self.uri} is not writable ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "strerror", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def is_uri(text: str) -> bool:
    return "://" in str(text)


def locate(text: str | Path | Location) -> Location:
    """A --storage / experiment / checkpoint address -> Location; no network call is made here.

    StorageError for a scheme pyarrow does not know, a URI that carries credentials, or an option
    pyarrow does not take."""
    if isinstance(text, Location):
        return text
    text = str(text)
    if not is_uri(text):
        path = Path(text).expanduser().resolve().as_posix()
        return Location(pafs.LocalFileSystem(), path, path)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return locate(parts.path)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    secret = sorted(SECRET_OPTIONS & set(options)) or (["password"] if parts.password else [])
    if secret:
        raise StorageError(f"storage URI carries a credential ({', '.join(secret)}); give it through the "
                           "store's own configuration (e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    base = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
    if scheme == "s3":
        return Location(_s3(options, text), f"{parts.netloc}{parts.path}".rstrip("/"), base, parts.query)
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except (ArrowInvalid, ValueError) as err:
        if "nrecognized filesystem" in str(err):
            raise StorageError(f"storage {text}: scheme '{parts.scheme}' is not one pyarrow knows "
                               "(s3://, gs://, abfs://, hdfs://, a local or NFS path)") from None
        raise StorageError(f"storage {text}: {_first_line(err)}") from None
    except OSError as err:
        raise StorageError(f"storage {text}: {_first_line(err)}") from None
    return Location(filesystem, path.rstrip("/"), base, parts.query)


def _s3(options: dict[str, str], text: str) -> pafs.S3FileSystem:
    unknown = sorted(set(options) - S3_OPTIONS)
    if unknown:
        raise StorageError(f"storage {text}: unknown S3 option(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(S3_OPTIONS))})")
    kwargs: dict = {k: v for k, v in options.items() if k != "force_virtual_addressing"}
    if "force_virtual_addressing" in options:
        kwargs["force_virtual_addressing"] = options["force_virtual_addressing"].lower() in ("1", "true")
    # Without a region in the URI pyarrow would ask AWS for the bucket's region over the network;
    # the standard variables name it, else us-east-1 (what S3-compatible servers expect).
    kwargs.setdefault("region", os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                      or "us-east-1")
    return pafs.S3FileSystem(connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
                             retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=0), **kwargs)
