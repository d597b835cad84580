"""Long documents: split within a token budget, map and reduce through the gateway's calls."""

from claude_proxy.documents.settings import DocumentSettings
from claude_proxy.documents.split import Chunk, split_document

__all__ = ["Chunk", "DocumentSettings", "split_document"]
