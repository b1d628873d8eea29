"""LangChain integration of vectord: `VectordVectorStore`."""

from .vectorstores import TEXT_KEY, VectordVectorStore

__all__ = ["TEXT_KEY", "VectordVectorStore"]
