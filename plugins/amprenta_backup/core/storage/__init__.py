"""Backup storage: one interface, a local-folder and an S3 implementation."""

from __future__ import annotations

from amprenta_backup.core.storage.base import ObjectWriter, Storage
from amprenta_backup.core.storage.local import LocalStorage
from amprenta_backup.core.storage.s3 import S3Storage

__all__ = ["LocalStorage", "ObjectWriter", "S3Storage", "Storage"]
