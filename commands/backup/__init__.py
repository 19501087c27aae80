"""The backup commands; `Catalog` is its public read (the backup-file picker)."""

from commands.backup.catalog import Catalog

__all__ = ["Catalog"]
