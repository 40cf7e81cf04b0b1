"""`bert-tf bench`: runs the benchmark suite (bert_tf vs HF, KerasHub, Model Garden, LiteRT)."""

DEFAULT_OUT = "runs/bench"


def register(subparsers):
    p = subparsers.add_parser("bench", help="benchmark bert_tf against its peers (P1-P7)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"folder for bench.json, bench.txt, bench_ratios.png (default {DEFAULT_OUT})")
    p.add_argument("--measures", default="P1,P2,P3,P4,P5,P6,P7",
                   help="comma-separated subset of P1,P2,P3,P4,P5,P6,P7 (default: all; P7 "
                        "fine-tunes twice per task, about an hour at full sizes)")
    p.add_argument("--sizes", default="full", choices=("full", "tiny"),
                   help="full: the reported sizes; tiny: a fast smoke run")
    p.add_argument("--threads", type=int, default=2,
                   help="intra-op threads for every framework (default 2)")
    p.add_argument("--p3-teacher", default=None, metavar="DIR",
                   help="a fine-tuned Rotten Tomatoes classifier (with --p3-student, its "
                        "distilled student): P3 then also times the student as shipped (length "
                        "signatures, dynamic and int8) against the teacher's float32 fixed-128")
    p.add_argument("--p3-student", default=None, metavar="DIR")
    p.set_defaults(run=run)


def run(args) -> int:
    from bert_tf.benchmarks import run_suite
    measures = tuple(m.strip().upper() for m in args.measures.split(",") if m.strip())
    if (args.p3_teacher is None) != (args.p3_student is None):
        from bert_tf.benchmarks.timing import BenchmarkError
        raise BenchmarkError("--p3-teacher and --p3-student go together")
    run_suite(args.out, measures=measures, sizes=args.sizes, threads=args.threads,
              p3_models=(args.p3_teacher, args.p3_student) if args.p3_teacher else None)
    return 0
