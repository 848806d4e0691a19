"""The ``zoo`` command: predict, evaluate, train, finetune, export, list.

Each sub-command is a thin layer over the Python API of the same name.
"""

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no TensorFlow info logs (the rest: zoo.startup)

DEFAULT_MODEL = "abn_resnet20.cifar10"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows every option's default."""


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `kind` (int or float) in [low, high] (open ends where asked), so a bad
    value is refused where it is parsed, with the range in the message."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high or value != value:
            left, right = ("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}"), (
                "inf" if high is None else f"{high:g}") + (")" if high_open else "]")
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected a value in {left}, {right}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_INT = number(int, 1)
NON_NEGATIVE_INT = number(int, 0)
POSITIVE = number(float, 0, low_open=True)
NON_NEGATIVE = number(float, 0)
UNIT_INTERVAL = number(float, 0, 1)
BELOW_ONE = number(float, 0, 1, high_open=True)


def add_data_args(parser, required=True):
    parser.add_argument("--data", required=required,
                        help="image folder (one sub-folder per class, or an attributes.csv; optionally inside "
                             "train/ and test/), .npz file, or tensorflow-datasets name (tfds:cifar10)")
    parser.add_argument("--split", default=None, help="split of --data to use (None: train for training, "
                                                      "test for evaluation)")


def add_train_args(parser):
    from zoo.training.recipe import PRECISIONS, TrainConfig

    d = TrainConfig()
    parser.add_argument("--val-split", default=None,
                        help="split of --data evaluated after each epoch for --keep-best (e.g. val; not test)")
    parser.add_argument("--keep-best", action="store_true",
                        help="save the epoch with the best --val-split accuracy instead of the last one")
    parser.add_argument("--test-split", default="test",
                        help="split of --data evaluated after each epoch ('' for none; skipped with a note when the "
                             "data has no such split)")
    parser.add_argument("--objective", default=None, help="a training objective added to the architecture's loss, "
                        "e.g. sharpen_focus (None: the architecture's own; none: its loss alone)")
    parser.add_argument("--loss-arg", action="append", metavar="KEY=VALUE",
                        help="loss or objective argument, e.g. --loss-arg sigma=0.55 --loss-arg second_order=true "
                             "(repeatable; an unknown key lists the valid ones)")
    parser.add_argument("--loss-schedule", action="append", metavar="KEY=JSON",
                        help="a loss argument that follows the epoch, e.g. --loss-schedule "
                             "'patch_loss_weight={\"start\": 0, \"end\": 0.1, \"epochs\": 80, "
                             "\"shape\": \"sigmoid_rampup\", \"per\": \"epoch\"}' "
                             "(shapes linear, sigmoid_rampup; per step or epoch; replaces the architecture's own)")
    parser.add_argument("--epochs", type=POSITIVE_INT, default=d.epochs, help="epochs to train")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=d.batch_size, help="global batch size")
    parser.add_argument("--lr", type=POSITIVE, default=d.lr, help="peak learning rate (SGD)")
    parser.add_argument("--momentum", type=BELOW_ONE, default=d.momentum, help="SGD momentum")
    parser.add_argument("--weight-decay", type=NON_NEGATIVE, default=d.weight_decay, help="L2 weight decay")
    parser.add_argument("--schedule", choices=["cosine", "step"], default=d.schedule, help="learning-rate schedule")
    parser.add_argument("--milestones", type=POSITIVE_INT, nargs="*", default=list(d.milestones),
                        help="epochs at which the step schedule multiplies the rate by --gamma")
    parser.add_argument("--gamma", type=number(float, 0, 1, low_open=True), default=d.gamma,
                        help="factor of the step schedule")
    parser.add_argument("--warmup-epochs", type=NON_NEGATIVE, default=d.warmup_epochs,
                        help="linear warm-up (cosine schedule only)")
    parser.add_argument("--label-smoothing", type=BELOW_ONE, default=d.label_smoothing, help="label smoothing")
    parser.add_argument("--mixed-precision", choices=PRECISIONS, default="auto",
                        help="compute precision; auto: bfloat16 on a GPU or a CPU with AVX512_BF16 / AMX, float32 "
                             "elsewhere (the saved config records which)")
    parser.add_argument("--crop-padding", type=NON_NEGATIVE_INT, default=4,
                        help="random crop after padding by this many pixels (0: no cropping)")
    parser.add_argument("--no-flip", action="store_true",
                        help="no random horizontal flips (text, digits, handwriting: anything not mirror-symmetric)")
    parser.add_argument("--rand-augment", action="store_true", help="RandAugment (Keras layer)")
    parser.add_argument("--mixup", type=NON_NEGATIVE, default=0.0, help="MixUp alpha (0: off)")
    parser.add_argument("--cutmix", action="store_true", help="CutMix")
    parser.add_argument("--seed", type=NON_NEGATIVE_INT, default=d.seed, help="random seed (data order, augmentation, "
                                                                             "initialisation)")
    parser.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"], default="default",
                        help="tf.distribute strategy (loop engine)")
    parser.add_argument("--checkpoint-dir", default=None, help="folder for checkpoints (None: no checkpoints)")
    parser.add_argument("--checkpoint-every", type=POSITIVE_INT, default=d.checkpoint_every,
                        help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of "
                                                              "--checkpoint-dir (same recipe, model and data)")
    parser.add_argument("--log-dir", default=None, help="TensorBoard log directory")
    parser.add_argument("--max-steps", type=POSITIVE_INT, default=None, help="stop after this many steps (None: all "
                                                                              "epochs)")
    parser.add_argument("--deterministic", action="store_true", help="deterministic TF ops (exact resume checks)")
    parser.add_argument("--jit-compile", choices=["auto", "on", "off"], default="auto",
                        help="XLA for the train step; auto: the loop engine off (on CPUs it trains at parity to 17x "
                             "slower with XLA), the fit engine Keras' rule (on with a GPU or under JAX)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar: one line per epoch and "
                                                                   "evaluation (logs, CI)")
    parser.add_argument("--output", required=True, help="directory to save the trained model (zoo.load-able); "
                                                        "checked before training")
    parser.add_argument("--force", action="store_true", help="replace an existing model in --output (a folder "
                                                             "holding anything else is never replaced)")


def add_progress_args(parser):
    parser.add_argument("--no-progress", action="store_true", help="no progress bar: one line as each stage starts "
                                                                   "and ends (the same when the output is not a "
                                                                   "terminal)")
    parser.add_argument("--quiet", action="store_true", help="no progress at all, only the results")


def progress_mode(args):
    """--quiet: False (nothing); --no-progress: "lines"; else True (a bar on a terminal)."""
    return False if args.quiet else "lines" if args.no_progress else True


def train_config_from_args(args):
    from zoo.training.recipe import AugmentConfig, TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, schedule=args.schedule, milestones=tuple(args.milestones),
        gamma=args.gamma, warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        objective=args.objective, loss_kwargs=parse_model_args(args.loss_arg, "--loss-arg"),
        loss_schedules=parse_model_args(args.loss_schedule, "--loss-schedule"),
        mixed_precision=args.mixed_precision, seed=args.seed,
        augment=AugmentConfig(crop_padding=args.crop_padding, flip=not args.no_flip, rand_augment=args.rand_augment,
                              mixup_alpha=args.mixup, cutmix=args.cutmix),
        checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, log_dir=args.log_dir,
        max_steps=args.max_steps, deterministic=args.deterministic, progress=not args.no_progress,
        keep_best=args.keep_best, jit_compile={"auto": None, "on": True, "off": False}[args.jit_compile],
    )


def parse_model_args(pairs, option="--model-arg"):
    """``["width=8", "attention_mode=multiply"]`` -> builder (or loss) kwargs (values parsed as JSON
    if possible: numbers, true / false, null)."""
    kwargs = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{option} takes KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def load_model(spec):
    """``zoo.load`` of a model name or folder, optionally rebuilt with builder arguments that have no
    weights: ``NAME@key=value,key=value`` (e.g. ``...@mask_transform=top_channels,mask_strength=0.5``)."""
    import zoo

    name, _, overrides = spec.partition("@")
    return zoo.load(name, **parse_model_args(overrides.split(",") if overrides else []))


def make_strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def has_split(data, split):
    """Whether `data` has the split `split` (a folder without a sub-folder of that name has not)."""
    return bool(split) and not (os.path.isdir(data) and not os.path.isdir(os.path.join(data, split)))


def check_validation_split(args):
    """--keep-best chooses on --val-split, which must be given and must not be the test split."""
    if args.keep_best and not args.val_split:
        raise ValueError("--keep-best needs --val-split (a validation split; the test split is never used to choose)")
    if args.val_split and args.val_split == args.test_split:
        raise ValueError(f"--val-split and --test-split are both {args.val_split!r}: choosing the epoch on the test "
                         "split would make its accuracy optimistic")


def open_splits(args, image_size):
    """``(train, test, validation)`` sources of the command's --data and splits."""
    from zoo.data import open_source

    check_validation_split(args)
    train_source = open_source(args.data, args.split or "train", image_size)
    test_source = val_source = None
    if args.test_split and not has_split(args.data, args.test_split):
        print(f"note: {args.data} has no {args.test_split}/ folder; no evaluation during training", file=sys.stderr)
    elif args.test_split:
        test_source = open_source(args.data, args.test_split, image_size, class_names=train_source.class_names)
    if args.val_split:
        val_source = open_source(args.data, args.val_split, image_size, class_names=train_source.class_names)
    return train_source, test_source, val_source


def cmd_train(args):
    import keras

    from zoo.hub import check_model_output
    from zoo.training import setup

    check_model_output(args.output, args.force)  # before any work
    engine = args.engine or ("loop" if keras.backend.backend() == "tensorflow" else "fit")
    config = train_config_from_args(args)
    setup.check_config(config, args.resume)
    setup.check_engine_options(engine, config, args.strategy)
    train_source, test_source, val_source = open_splits(args, tuple(args.image_size))
    build_kwargs = {"input_shape": (*args.image_size, 3), **parse_model_args(args.model_arg)}
    if args.task:
        build_kwargs["task"] = args.task
    if engine == "fit":  # any Keras backend (JAX on GPU machines without TensorFlow)
        from zoo.training import fit as zfit

        zfit.fit(args.model, train_source, config, test_source, build_kwargs, args.output, args.resume, val_source,
                 force=args.force)
    else:
        from zoo.training import loop as ztrain

        ztrain.train(args.model, train_source, config, test_source, make_strategy(args.strategy),
                     resume=args.resume, output_dir=args.output, build_kwargs=build_kwargs, val_data=val_source,
                     force=args.force)
    print(f"saved to {args.output}; use: zoo evaluate {args.output} --data DATA")


def cmd_finetune(args):
    from zoo.hub import check_model_output
    from zoo.training.finetune import finetune
    from zoo.training.setup import check_config

    check_model_output(args.output, args.force)  # before any work
    strategy = make_strategy(args.strategy)
    test_split = args.test_split if has_split(args.data, args.test_split) else None
    if args.test_split and test_split is None:
        print(f"note: {args.data} has no {args.test_split}/ folder; no evaluation during fine-tuning", file=sys.stderr)
    config = train_config_from_args(args)
    check_config(config, args.resume)
    check_validation_split(args)
    finetune(args.model, args.data, args.output, config, freeze=args.freeze,
             test_data=args.data if test_split else None, strategy=strategy, resume=args.resume,
             split=args.split or "train", test_split=test_split or "test", val_split=args.val_split, force=args.force)
    print(f"saved to {args.output}; use: zoo predict IMAGE --model {args.output}")


def cmd_predict(args):
    import zoo
    from zoo.prediction import iter_predict_files

    if not args.no_overlay:
        check_outputs(args, (args.overlay_dir, "container"))
    model = zoo.load(args.model)
    results = iter_predict_files(model, args.images, args.top_k, None if args.no_overlay else args.overlay_dir,
                                 threshold=args.threshold, map_name=args.map, attribute=args.attribute,
                                 batch_size=args.batch_size)
    for result in results:  # printed as each batch is done, so that a long run shows its progress
        lines = [result["file"]]
        if not result["predictions"]:
            lines.append("  no attribute predicted present")
        lines += [f"  {prob:7.2%}  {name}" for name, prob in result["predictions"]]
        if "overlay" in result:
            lines.append(f"  attention overlay: {result['overlay']}")
        for key, what in (("channels", "channel importance"), ("channel_masks", "channel masks")):
            if key in result:
                lines.append(f"  {what}: {result[key]}")
        print("\n".join(lines), flush=True)


def check_outputs(args, *targets):
    """Refuse up front (before any slow work) what a command would write wrongly, by the one rule
    of :func:`zoo.files.check_output`. A target is a path (a file) or ``(path, kind)``."""
    from zoo import files

    for target in targets:
        path, kind = target if isinstance(target, tuple) else (target, "file")
        if path:
            files.check_output(path, getattr(args, "force", False), kind)


def cmd_evaluate(args):
    from zoo import files
    from zoo.evaluation import evaluate, format_metrics, save_confusion_matrix

    check_outputs(args, args.json, args.confusion_matrix)
    model = load_model(args.model)
    metrics = evaluate(model, args.data, args.batch_size, progress=progress_mode(args), split=args.split or "test")
    print(format_metrics(args.model, metrics, per_class=True))
    if args.confusion_matrix:
        drawn = save_confusion_matrix(metrics, args.confusion_matrix, force=args.force,
                                      title=f"{args.model} on {args.data} ({args.split or 'test'})")
        print(f"confusion matrix: {drawn}")
    if args.json:
        files.write_text(args.json, json.dumps(metrics, indent=1), force=args.force)


def cmd_export(args):
    import zoo
    from zoo.errors import InvalidInput
    from zoo.export import calibration_images, check_export_target, export

    default = f"{args.model.rstrip('/').split('/')[-1]}" + (".tflite" if args.format == "tflite" else "")
    target = args.output or default
    check_export_target(target, args.format, args.quantize, args.force)  # before loading or converting
    if args.quantize == "int8" and not args.calibration_data:
        raise InvalidInput("--quantize int8 calibrates on images like those the model will serve: add "
                           "--calibration-data DATA (a folder, .npz or tfds:NAME), or use --quantize dynamic")
    if args.calibration_data and args.quantize != "int8":
        raise InvalidInput("--calibration-data is used by --quantize int8 only")
    model = zoo.load(args.model)
    outputs = [name.strip() for name in args.outputs.split(",")] if args.outputs else None
    calibration = None
    if args.quantize == "int8":
        calibration = calibration_images(model, args.calibration_data, args.calibration_split, args.calibration_count)
    path = export(model, target, args.format, args.quantize, force=args.force, outputs=outputs,
                  calibration=calibration)
    print(f"exported {args.model} to {path}")


def cmd_robustness(args):
    from zoo import files
    from zoo import robustness as zr

    check_outputs(args, args.json, args.plot)
    results = {}
    for name in [args.model, *args.compare]:
        results[name] = zr.robustness(load_model(name), args.data, args.attacks, args.epsilons, args.sigmas,
                                      args.pgd_steps, args.max_examples, split=args.split or "test",
                                      progress=progress_mode(args))
    print(zr.format_table(results))
    if args.plot:
        plot = zr.plot_curves(results, args.plot, force=args.force, data=f"{args.data} ({args.split or 'test'})")
        print(f"plot: {plot}")
    if args.json:
        files.write_text(args.json, json.dumps(results, indent=1), force=args.force)


def attention_options(args, models):
    """``--attention-map`` as the option of :func:`zoo.explain.explain` (none when not given),
    checked against every model's declared maps before any work."""
    from zoo import registry

    if not args.attention_map:
        return {}
    for model in models:
        registry.feature_info(model).map(args.attention_map)  # an unknown map names the declared ones
    return {"attention_map": args.attention_map}


def default_explain_methods(model):
    """The model's own attention (where it declares maps) and Grad-CAM / Grad-CAM++."""
    from zoo import registry

    own = ["attention"] if registry.feature_info(model).maps else []
    return [*own, "gradcam", "gradcam++"]


def cmd_explain(args):
    from zoo.explain.figures import explain_files

    check_outputs(args, (args.out, "container"))
    model = load_model(args.model)
    options = attention_options(args, [model])
    methods = args.methods or default_explain_methods(model)
    for path in explain_files(model, args.images, methods, args.out, target=args.target,
                              progress=progress_mode(args), **options):
        print(path)


def cmd_benchmark(args):
    from zoo import files
    from zoo.explain.benchmark import BASELINES, benchmark, example_figure, format_table

    check_outputs(args, args.json, args.figure)
    models = {spec: load_model(spec) for spec in args.models}
    options = attention_options(args, models.values())
    partial = None
    if args.json:  # finished rows stay on disk while the benchmark runs: a crash keeps what was measured
        partial = files.partial_rows(args.json)
        partial.unlink(missing_ok=True)  # the zoo's own file, left by an earlier run that did not finish
        print(f"rows are kept in {partial} as they finish", file=sys.stderr)
    rows = benchmark(models, args.data, args.methods, args.max_examples, progress=progress_mode(args),
                     on_row=(lambda row: files.append_row(partial, row)) if partial else None, **options)
    print(format_table(rows))
    for row in rows:
        if "note" in row:
            print(f"note: {row['model']} {row['method']}: {row['note']}", file=sys.stderr)
    if args.json:
        files.write_text(args.json, json.dumps(rows, indent=1), force=args.force)
        partial.unlink(missing_ok=True)
    if args.figure:
        example_figure(models, args.data, args.figure, [m for m in args.methods if m not in BASELINES],
                       args.figure_count, force=args.force, **options)
        print(args.figure)


def cmd_list(args):
    import zoo
    from zoo import registry

    names = zoo.list_models(args.pattern, pretrained=args.pretrained)
    if not names:
        every = zoo.list_models(pretrained=args.pretrained)
        raise registry.unknown_name_error(args.pattern, every, "pretrained model" if args.pretrained else "model")
    for name in names:
        print(pretrained_summary(name) if args.pretrained else name)


def pretrained_summary(name):
    """``name  top-1  top-5  dataset  [default]`` from the weights card (accuracies as measured)."""
    from zoo import weights

    entry = weights.manifest_entry(name)
    accuracy = entry.get("card", {}).get("accuracy", {})
    if "test_mean_accuracy" in accuracy:
        scores = f"mean attribute accuracy {accuracy['test_mean_accuracy']:.2%}"
    else:
        top1, top5 = (f"{accuracy[key]:.2%}" if key in accuracy else "-" for key in ("test_top1", "test_top5"))
        scores = f"top-1 {top1:>7s}  top-5 {top5:>7s}"
    same_arch = [n for n, e in weights.load_manifest().items() if e["arch"] == entry["arch"]]
    default = f"  (default for {entry['arch']})" if entry.get("default") and len(same_arch) > 1 else ""
    return f"{name:32s} {scores}  {accuracy.get('dataset', '')}{default}"


def add_command(sub, name, help_text):
    return sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)


def build_parser():
    parser = argparse.ArgumentParser(prog="zoo", description="attention-zoo: CNNs that show where they look",
                                     formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log messages, and TensorFlow's own start-up "
                                                                     "lines (oneDNN, absl)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_command(sub, "train", "train an architecture from scratch (tf.distribute loop, or model.fit)")
    p.add_argument("model", help="architecture name, e.g. abn_resnet20")
    add_data_args(p)
    p.add_argument("--image-size", type=POSITIVE_INT, nargs=2, default=[32, 32], metavar=("H", "W"),
                   help="images are resized to this size")
    p.add_argument("--engine", choices=["loop", "fit"], default=None,
                   help="loop: the tf.distribute custom loop; fit: model.fit on any Keras backend (None: loop on "
                        "TensorFlow, fit on JAX/PyTorch)")
    p.add_argument("--task", choices=["multiclass", "multilabel"], default=None,
                   help="None: the data's (integer labels: multiclass; attributes: multilabel)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="builder argument, e.g. --model-arg attention_mode=multiply --model-arg width=32")
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = add_command(sub, "finetune", "fine-tune a pretrained model on your own images")
    p.add_argument("model", help="pretrained name (abn_resnet20.cifar10) or saved model directory")
    add_data_args(p)
    p.add_argument("--freeze", action="store_true", help="freeze the feature extractor")
    add_train_args(p)
    p.set_defaults(func=cmd_finetune, epochs=10, lr=0.01)

    p = add_command(sub, "predict", "top-5 classes (or the attributes present) and an attention overlay per image")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, GIF)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="pretrained name or saved model folder")
    p.add_argument("--top-k", type=POSITIVE_INT, default=5, help="classes shown (multiclass models; attribute models "
                                                                  "show every attribute at or above --threshold)")
    p.add_argument("--threshold", type=UNIT_INTERVAL, default=None,
                   help="probability from which an attribute is shown as present (multi-label models; None: 0.5)")
    p.add_argument("--overlay-dir", default=".", help="where <image>.attention.png is written (never beside the "
                                                      "input images unless you name their folder)")
    p.add_argument("--map", default=None, help="attention map to draw (None: the model's first; zoo.attention_maps "
                                               "lists them, e.g. attention_2 for LTPA)")
    p.add_argument("--attribute", default=None, help="attribute whose most important channel masks are drawn "
                                                     "(multi-channel attention; None: the most probable)")
    p.add_argument("--no-overlay", action="store_true", help="print the predictions only")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="images per forward pass (memory)")
    p.set_defaults(func=cmd_predict)

    p = add_command(sub, "evaluate", "accuracy (top-1/top-5, per class; or per attribute) and loss on a dataset")
    p.add_argument("model", help="pretrained name or saved model folder; NAME@key=value,... rebuilds it with builder "
                                 "arguments that have no weights (e.g. @mask_transform=top_channels,mask_strength=0.5)")
    add_data_args(p)
    p.add_argument("--batch-size", type=POSITIVE_INT, default=500, help="images per batch")
    add_progress_args(p)
    p.add_argument("--confusion-matrix", default=None, metavar="PNG", help="write the confusion matrix to this PNG")
    p.add_argument("--json", default=None, help="write every metric to this JSON file")
    p.add_argument("--force", action="store_true", help="replace an existing --json / --confusion-matrix")
    p.set_defaults(func=cmd_evaluate)

    p = add_command(sub, "export", "export to SavedModel or TFLite (uint8 input, logits + attention)")
    p.add_argument("model", help="pretrained name or saved model folder")
    p.add_argument("--format", choices=["saved_model", "tflite"], default="saved_model", help="export format")
    p.add_argument("--quantize", choices=["float16", "dynamic", "int8"], default=None,
                   help="TFLite quantisation (None: float32): float16 or int8 (dynamic) weights, or int8 weights "
                        "and activations (int8: needs --calibration-data)")
    p.add_argument("--calibration-data", default=None, metavar="DATA",
                   help="images to calibrate --quantize int8 on (a folder, .npz or tfds:NAME)")
    p.add_argument("--calibration-split", default="train", help="the split of --calibration-data to read")
    p.add_argument("--calibration-count", type=number(int, 10), default=200,
                   help="how many --calibration-data images to calibrate on")
    p.add_argument("--outputs", default=None,
                   help="comma-separated outputs to keep, e.g. logits,attention (all when not given; the others "
                        "are pruned from the exported graph)")
    p.add_argument("--output", default=None, help="None: <model name>[.tflite] in the current folder")
    p.add_argument("--force", action="store_true", help="replace an existing --output")
    p.set_defaults(func=cmd_export)

    p = add_command(sub, "robustness", "accuracy under FGSM, PGD and Gaussian noise (optionally vs other models)")
    p.add_argument("model", help="pretrained name or saved model folder (NAME@key=value,... as --compare)")
    add_data_args(p)
    p.add_argument("--compare", action="append", default=[], metavar="MODEL",
                   help="another model evaluated side by side (repeatable); MODEL@key=value,... rebuilds a model with "
                        "builder arguments that have no weights, e.g. NAME@mask_transform=power,mask_strength=1")
    p.add_argument("--attacks", nargs="+", choices=["fgsm", "pgd", "noise"], default=["fgsm", "pgd", "noise"],
                   help="perturbations to measure")
    p.add_argument("--epsilons", nargs="+", type=number(float, 0, 255), default=[0, 1, 2, 4, 8],
                   help="attack budgets, pixels of 255")
    p.add_argument("--sigmas", nargs="+", type=number(float, 0, 255), default=[0, 4, 8, 16, 32],
                   help="noise std, pixels")
    p.add_argument("--pgd-steps", type=POSITIVE_INT, default=10, help="PGD iterations")
    p.add_argument("--max-examples", type=POSITIVE_INT, default=1000, help="images evaluated (the first N)")
    p.add_argument("--plot", default=None, help="write the accuracy curves to this PNG")
    p.add_argument("--json", default=None, help="write the numbers to this JSON file")
    p.add_argument("--force", action="store_true", help="replace an existing --json / --plot")
    add_progress_args(p)
    p.set_defaults(func=cmd_robustness)

    from zoo.explain.benchmark import BASELINES
    from zoo.explain.methods import METHODS

    p = add_command(sub, "explain", "one figure per image: the model's own attention and post-hoc explanations")
    p.add_argument("model", help="pretrained name or saved model folder")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                   help="None: attention, gradcam and gradcam++, without attention for a model that has no maps of "
                        "its own (a plain baseline)")
    p.add_argument("--target", default=None, help="class or attribute name (None: the predicted one)")
    p.add_argument("--attention-map", default=None, help="which declared map is 'attention' (None: the model's "
                                                         "first, e.g. LTPA's attention_1; try attention_2)")
    p.add_argument("--out", default="explanations", help="folder for <image>.explain.png (never the input's folder "
                                                         "unless you name it)")
    add_progress_args(p)
    p.set_defaults(func=cmd_explain)

    p = add_command(sub, "benchmark", "attention-quality benchmark on data with boxes and masks (cluttered MNIST)")
    p.add_argument("models", nargs="+", help="pretrained names or saved model folders (NAME@key=value,... too)")
    p.add_argument("--data", required=True, help=".npz with x/y/boxes/masks_test (scripts/make_cluttered_mnist.py); "
                   "data without boxes and masks (e.g. CIFAR-10): deletion / insertion only")
    p.add_argument("--methods", nargs="+", choices=METHODS + BASELINES, default=list(METHODS + BASELINES),
                   help="explanation methods and baselines scored")
    p.add_argument("--max-examples", type=POSITIVE_INT, default=500, help="images scored (the first N)")
    p.add_argument("--attention-map", default=None, help="which declared map is 'attention' (None: the model's "
                   "own, e.g. LTPA's attention_1)")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    p.add_argument("--figure", default=None, help="write a PNG grid of example maps (models x methods) here")
    p.add_argument("--figure-count", type=POSITIVE_INT, default=3, help="images in --figure")
    p.add_argument("--force", action="store_true", help="replace an existing --json / --figure")
    add_progress_args(p)
    p.set_defaults(func=cmd_benchmark)

    p = add_command(sub, "list", "list architectures (or pretrained names)")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard pattern, e.g. 'abn*'")
    p.add_argument("--pretrained", action="store_true", help="list pretrained names with their measured accuracy")
    p.set_defaults(func=cmd_list)
    return parser


# what the command line reports as one line instead of a traceback: the zoo's own errors, and
# the built-in ones that library code (Keras, numpy, Pillow, the OS) raises for bad input
REPORTED = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
            RuntimeError, FloatingPointError, ConnectionError)


def main(argv=None):
    from zoo import startup
    from zoo.errors import ZooError

    args = build_parser().parse_args(argv)
    if args.verbose:
        sys.stderr.write(startup.held_back())  # TensorFlow's native start-up lines
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except (ZooError, *REPORTED) as err:
        message = str(err) or type(err).__name__
        print(f"zoo {args.command}: error: {message}", file=sys.stderr)
        if args.verbose:
            import traceback

            traceback.print_exc()
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted (nothing half-written is left behind)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
