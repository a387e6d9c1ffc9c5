"""Storage: where experiments live, a local/NFS folder or any URI pyarrow.fs knows (docs/storage.md).

Above cli and raycompat only (store/recovery.py repairs Ray's stored state through raycompat's
declared private names), so trainables, spaces, analysis and search all use it.
"""

from store.fs import Location, StorageError, locate

__all__ = ["Location", "StorageError", "locate"]
