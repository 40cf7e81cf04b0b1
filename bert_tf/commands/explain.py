"""`bert-tf explain`: pictures of what a fine-tuned model looked at for one input — attention
maps (every layer × head, and one layer averaged over heads) and, for classification and
regression, integrated-gradient attributions of the predicted label — plus explanation.json.
See `bert_tf.explain`."""

from __future__ import annotations


def register(subparsers):
    p = subparsers.add_parser("explain", help="attention maps and attributions for one input")
    p.add_argument("--model", required=True, help="a `bert-tf finetune` output directory")
    p.add_argument("text", help="the input text (for SQuAD models: the question)")
    p.add_argument("--text-pair", default=None,
                   help="the second input of a pair model (for SQuAD models: the context)")
    p.add_argument("--out", default="explain", help="folder for the PNGs and explanation.json "
                   "(default ./explain)")
    p.add_argument("--layer", type=int, default=None,
                   help="the layer of the head-averaged map (default the last; -1 counts from "
                        "the end)")
    p.add_argument("--pieces", action="store_true", help="word-pieces instead of words")
    p.add_argument("--steps", type=int, default=64, help="integrated-gradient steps (default 64)")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from bert_tf.explain import ExplainError, explain, write_explanation
    from bert_tf.tasks.model_dir import FinetunedModel

    if not args.text.strip():
        raise ExplainError("the text is empty: there is nothing to explain")
    if args.steps < 1:
        raise ExplainError(f"--steps must be a positive integer, got {args.steps}")
    loaded = FinetunedModel.load(args.model)
    names = tuple(loaded.task.serving_input_names)
    given = [args.text] + ([args.text_pair] if args.text_pair is not None else [])
    if len(given) != len(names):
        raise ExplainError(f"a {loaded.task_type} model takes {len(names)} input(s) "
                           f"({' + '.join(names)}): " + ("pass --text-pair" if len(names) == 2
                                                         else "drop --text-pair"))
    explanation = explain(loaded, dict(zip(names, given)), steps=args.steps)
    written = write_explanation(explanation, args.out, layer=args.layer, pieces=args.pieces)
    summary = {"files": written, "answer": explanation.answer,
               "truncated": explanation.truncated}
    if explanation.attribution is not None:
        summary["attribution"] = {k: explanation.attribution[k] for k in
                                  ("target", "sum", "expected_sum", "relative_error")}
    print(json.dumps(summary, ensure_ascii=False, default=float))
    return 0
