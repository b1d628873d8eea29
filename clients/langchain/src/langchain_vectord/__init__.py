"""LangChain integration of vectord: `VectordVectorStore`."""

from .vectorstores import VectordVectorStore

__all__ = ["VectordVectorStore"]
