"""Errors a user can act on. Each carries a one-line message meant to be printed as is."""


class RagNewsError(Exception):
    """Base class: the message is one line that tells the user what to do."""


class ConfigError(RagNewsError):
    pass


class BrowserNotFound(RagNewsError):
    pass


class ModelNotFound(RagNewsError):
    pass


class MissingExtra(RagNewsError):
    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install \"rag-news[{extra}]\""
        )


class IndexError_(RagNewsError):
    """The index folder is missing, unreadable or fails validation."""


class IndexNotFound(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class IndexLocked(RagNewsError):
    pass


class EmbeddingMismatch(ConfigError, ValueError):
    """Vectors of another embedding model or dimension than the index holds (never mixed in one index)."""


class NothingIndexed(RagNewsError):
    """Every URL failed: nothing was written."""
