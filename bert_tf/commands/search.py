"""`bert-tf search`: the corpus lines closest in meaning to a query (cosine of embeddings).

The corpus (--index, one document per line) is embedded once; its vectors are cached beside it
(`<corpus>.bert-tf-vectors.npz`) and reused while both the corpus and the model are unchanged.
Prints one JSON object per query: {"query", "results": [{"rank", "line", "text", "score"}]}.
"""

from __future__ import annotations


def register(subparsers):
    from bert_tf.commands.embed import add_model_argument
    p = subparsers.add_parser("search", help="semantic search over a text file's lines")
    add_model_argument(p)
    p.add_argument("--index", required=True, help="the corpus: a UTF-8 text file, one document "
                   "per line (blank lines are skipped)")
    p.add_argument("--query", action="append", required=True,
                   help="the query text (repeat for several queries)")
    p.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--no-cache", action="store_true",
                   help="embed the corpus afresh and write no cache file")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from bert_tf.commands.embed import load_embedding_model
    from bert_tf.search import CorpusIndex, SearchError, embed_texts

    if args.k < 1:
        raise SearchError(f"-k must be a positive integer, got {args.k}")
    empty = [i for i, q in enumerate(args.query, 1) if not q.strip()]
    if empty:
        raise SearchError(f"--query number {empty[0]} is empty: give the text to search for")
    loaded = load_embedding_model(args.model)
    index = CorpusIndex.build(args.index, loaded.task, loaded.model, args.batch_size,
                              progress=not args.no_progress, use_cache=not args.no_cache)
    queries = embed_texts(loaded.task, loaded.model, args.query, args.batch_size)
    for query, hits in zip(args.query, index.search(queries, args.k)):
        print(json.dumps({"query": query, "results": [h.as_dict() for h in hits]},
                         ensure_ascii=False))
    return 0
