"""The ``zoo`` command: predict, evaluate, train, finetune, export, list.

Each sub-command is a thin layer over the Python API of the same name.
"""

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_MODEL = "abn_resnet20.cifar10"


def add_data_args(parser, required=True):
    parser.add_argument("--data", required=required,
                        help="image folder (one sub-folder per class, or train/ and test/ inside), .npz file, "
                             "or tensorflow-datasets name (tfds:cifar10)")
    parser.add_argument("--split", default=None, help="split of --data to use")


def add_train_args(parser):
    from zoo.training.recipe import TrainConfig

    d = TrainConfig()
    parser.add_argument("--test-split", default="test", help="split of --data evaluated after each epoch ('' for none)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--momentum", type=float, default=d.momentum)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--schedule", choices=["cosine", "step"], default=d.schedule)
    parser.add_argument("--milestones", type=int, nargs="*", default=list(d.milestones), help="epochs (step schedule)")
    parser.add_argument("--gamma", type=float, default=d.gamma)
    parser.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    parser.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    parser.add_argument("--mixed-precision", choices=["bfloat16", "float16"], default=None)
    parser.add_argument("--rand-augment", action="store_true")
    parser.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (0: off)")
    parser.add_argument("--cutmix", action="store_true")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"], default="default")
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument("--log-dir", default=None, help="TensorBoard log directory")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--deterministic", action="store_true", help="deterministic TF ops (exact resume checks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    parser.add_argument("--output", required=True, help="directory to save the trained model (zoo.load-able)")


def train_config_from_args(args):
    from zoo.training.recipe import AugmentConfig, TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, schedule=args.schedule, milestones=tuple(args.milestones),
        gamma=args.gamma, warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        mixed_precision=args.mixed_precision, seed=args.seed,
        augment=AugmentConfig(rand_augment=args.rand_augment, mixup_alpha=args.mixup, cutmix=args.cutmix),
        checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, log_dir=args.log_dir,
        max_steps=args.max_steps, deterministic=args.deterministic, progress=not args.no_progress,
    )


def parse_model_args(pairs):
    """``["width=8", "attention_mode=multiply"]`` -> builder kwargs (values parsed as JSON if possible)."""
    kwargs = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--model-arg takes KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def make_strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def open_splits(args, image_size):
    from zoo.data import open_source

    train_source = open_source(args.data, args.split or "train", image_size)
    test_source = None
    if args.test_split and os.path.isdir(args.data) and not os.path.isdir(os.path.join(args.data, args.test_split)):
        print(f"note: {args.data} has no {args.test_split}/ folder; no evaluation during training", file=sys.stderr)
    elif args.test_split:
        test_source = open_source(args.data, args.test_split, image_size, class_names=train_source.class_names)
    return train_source, test_source


def cmd_train(args):
    import keras

    engine = args.engine or ("loop" if keras.backend.backend() == "tensorflow" else "fit")
    train_source, test_source = open_splits(args, tuple(args.image_size))
    build_kwargs = {"input_shape": (*args.image_size, 3), **parse_model_args(args.model_arg)}
    config = train_config_from_args(args)
    if engine == "fit":  # any Keras backend (JAX on GPU machines without TensorFlow)
        from zoo.training import fit as zfit

        _, history = zfit.fit(args.model, train_source, config, test_source, build_kwargs, args.output, args.resume)
        print(json.dumps({k: v[-1] for k, v in history.items()}))
        return
    from zoo.training import loop as ztrain

    _, history = ztrain.train(args.model, train_source, config, test_source, make_strategy(args.strategy),
                              resume=args.resume, output_dir=args.output, build_kwargs=build_kwargs)
    print(json.dumps(history[-1] if history else {}))


def cmd_finetune(args):
    from zoo.training.finetune import finetune

    strategy = make_strategy(args.strategy)
    test = args.data if args.test_split else None
    config = train_config_from_args(args)
    _, history = finetune(args.model, args.data, args.output, config, freeze=args.freeze, test_data=test,
                          strategy=strategy, resume=args.resume, split=args.split or "train",
                          test_split=args.test_split or "test")
    print(json.dumps(history[-1] if history else {}))
    print(f"saved to {args.output}; use: zoo predict IMAGE --model {args.output}")


def cmd_predict(args):
    import zoo
    from zoo.prediction import predict_files

    model = zoo.load(args.model)
    results = predict_files(model, args.images, args.top_k, None if args.no_overlay else args.overlay_dir)
    for result in results:
        print(result["file"])
        for name, prob in result["top_k"]:
            print(f"  {prob:7.2%}  {name}")
        if "overlay" in result:
            print(f"  attention overlay: {result['overlay']}")


def cmd_evaluate(args):
    import zoo
    from zoo.evaluation import evaluate

    model = zoo.load(args.model)
    metrics = evaluate(model, args.data, args.batch_size, progress=not args.quiet, split=args.split or "test")
    print(f"{args.model}: top-1 {metrics['top1']:.2%}  top-5 {metrics['top5']:.2%}  loss {metrics['loss']:.4f}"
          f"  ({metrics['num_examples']} images)")
    print(json.dumps(metrics))


def cmd_export(args):
    import zoo
    from zoo.export import export

    model = zoo.load(args.model)
    default = f"{args.model.rstrip('/').split('/')[-1]}" + (".tflite" if args.format == "tflite" else "")
    path = export(model, args.output or default, args.format, args.quantize)
    print(f"exported {args.model} to {path}")


def cmd_robustness(args):
    import zoo
    from zoo import robustness as zr

    results = {}
    for name in [args.model, *([args.compare] if args.compare else [])]:
        results[name] = zr.robustness(zoo.load(name), args.data, args.attacks, args.epsilons, args.sigmas,
                                      args.pgd_steps, args.max_examples, split=args.split or "test")
    print(zr.format_table(results))
    if args.plot:
        print(f"plot: {zr.plot_curves(results, args.plot)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def cmd_list(args):
    import zoo

    for name in zoo.list_models(args.pattern, pretrained=args.pretrained):
        print(pretrained_summary(name) if args.pretrained else name)


def pretrained_summary(name):
    """``name  top-1  top-5  dataset  [default]`` from the weights card (accuracies as measured)."""
    from zoo import weights

    entry = weights.manifest_entry(name)
    accuracy = entry.get("card", {}).get("accuracy", {})
    top1, top5 = (f"{accuracy[key]:.2%}" if key in accuracy else "-" for key in ("test_top1", "test_top5"))
    default = "  (default)" if entry.get("default") else ""
    return f"{name:32s} top-1 {top1:>7s}  top-5 {top5:>7s}  {accuracy.get('dataset', '')}{default}"


def build_parser():
    parser = argparse.ArgumentParser(prog="zoo", description="attention-zoo: CNNs that show where they look")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an architecture from scratch with the custom tf.distribute loop")
    p.add_argument("model", help="architecture name, e.g. abn_resnet20")
    add_data_args(p)
    p.add_argument("--image-size", type=int, nargs=2, default=[32, 32], metavar=("H", "W"))
    p.add_argument("--engine", choices=["loop", "fit"], default=None,
                   help="loop: the tf.distribute custom loop (default on TensorFlow); fit: model.fit on any Keras "
                        "backend (default on JAX/PyTorch)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="builder argument, e.g. --model-arg attention_mode=multiply --model-arg width=32")
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a pretrained model on your own images")
    p.add_argument("model", help="pretrained name (abn_resnet20.cifar10) or saved model directory")
    add_data_args(p)
    p.add_argument("--freeze", action="store_true", help="freeze the feature extractor")
    add_train_args(p)
    p.set_defaults(func=cmd_finetune, epochs=10, lr=0.01, test_split="")

    p = sub.add_parser("predict", help="top-5 classes and an attention overlay PNG per image")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--overlay-dir", default=".", help="where <image>.attention.png is written")
    p.add_argument("--no-overlay", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="top-1/top-5 accuracy and loss on a dataset")
    p.add_argument("model")
    add_data_args(p)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export to SavedModel or TFLite (uint8 input, logits + attention)")
    p.add_argument("model")
    p.add_argument("--format", choices=["saved_model", "tflite"], default="saved_model")
    p.add_argument("--quantize", choices=["float16", "dynamic"], default=None)
    p.add_argument("--output", default=None)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("robustness", help="accuracy under FGSM, PGD and Gaussian noise (optionally vs another model)")
    p.add_argument("model")
    add_data_args(p)
    p.add_argument("--compare", default=None, help="a second model, evaluated side by side")
    p.add_argument("--attacks", nargs="+", choices=["fgsm", "pgd", "noise"], default=["fgsm", "pgd", "noise"])
    p.add_argument("--epsilons", nargs="+", type=float, default=[0, 1, 2, 4, 8], help="pixels of 255")
    p.add_argument("--sigmas", nargs="+", type=float, default=[0, 4, 8, 16, 32], help="noise std, pixels")
    p.add_argument("--pgd-steps", type=int, default=10)
    p.add_argument("--max-examples", type=int, default=1000)
    p.add_argument("--plot", default=None, help="write the accuracy curves to this PNG")
    p.add_argument("--json", default=None, help="write the numbers to this JSON file")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("list", help="list architectures (or pretrained names)")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--pretrained", action="store_true")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        print(f"zoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
