"""Storage: where experiments live, a local/NFS folder or any URI pyarrow.fs knows (docs/storage.md).

The bottom layer: imports nothing of tunelab's, so trainables, spaces, search and analysis all use it.
"""

from store.fs import Location, StorageError, locate

__all__ = ["Location", "StorageError", "locate"]
