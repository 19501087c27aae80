"""The search and Elasticsearch commands; `cat_indices` and `cat_aliases` are its public reads."""

from commands.search.es import cat_aliases, cat_indices

__all__ = ["cat_aliases", "cat_indices"]
