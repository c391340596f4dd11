from ..hookspecs import hookimpl
from ..retrieval import BM25Retriever


@hookimpl
def register_retrievers(register):
    register("bm25", BM25Retriever)
