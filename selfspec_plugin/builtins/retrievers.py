from ..hookspecs import hookimpl


@hookimpl
def register_retrievers(register):
    from ..retrieval import BM25Retriever

    register("bm25", BM25Retriever)
