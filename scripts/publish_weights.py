#!/usr/bin/env python
"""Copy a trained model into weights/ and write its manifest card, with measured accuracy.

    python scripts/publish_weights.py RUN_DIR/model abn_resnet20.cifar10 \
        --data ../shared/datasets/cifar10-jpeg.npz --dataset "CIFAR-10 (JPEG q75 copy)" \
        --command "scripts/train_abn_cifar10.sh 20" --machine "2-core AMD EPYC CPU (avx512_bf16), no GPU"

The accuracy in the card is measured here, on the test split, by the same code as
``zoo evaluate`` (the card records that command too).
"""

import argparse
import inspect
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zoo  # noqa: E402
from zoo import hub, weights  # noqa: E402
from zoo.evaluation import evaluate  # noqa: E402
from zoo.training.core import scalar_metrics  # noqa: E402


def training_stages(model_dir):
    """The saved configs of `model_dir` and of the local models it was fine-tuned from, oldest
    first (a warm restart is a fine-tune of the stage before it)."""
    stages = []
    while model_dir is not None:
        config = json.loads((Path(model_dir) / hub.CONFIG_FILE).read_text())
        stages.insert(0, config)
        parent = config.get("finetuned_from")
        model_dir = parent if parent and hub.is_saved_model_dir(parent) else None
    return stages


def wall_time(stages):
    """Training wall time from the saved histories: the tf.distribute loop's per-epoch ``seconds``
    (steps only) or the model.fit engine's ``epoch_seconds`` (evaluation and compilation included)."""
    loop = [record["seconds"] for stage in stages for record in stage.get("history", [])]
    if loop:
        return (f"{sum(loop) / 3600:.2f} h of training steps over {len(loop)} recorded epochs "
                "(evaluation between epochs not counted)")
    fit = [seconds for stage in stages for seconds in stage.get("history_fit", {}).get("epoch_seconds", [])]
    return (f"{sum(fit) / 3600:.2f} h over {len(fit)} recorded epochs (model.fit engine: evaluation and "
            "compilation included)")


def preprocessing_text(build, mean, std):
    """What the model does to its input pixels, for the card."""
    from zoo.models import backbones

    head = "RGB uint8/float pixels in [0, 255]; "
    if build.get("backbone") == "imagenet":
        return head + "keras.applications 'caffe' preprocessing inside the model (RGB->BGR, ImageNet mean subtracted)"
    if build.get("backbone") == "face":
        mean, std = backbones.CELEBA_MEAN, backbones.CELEBA_STD
    if mean is None or std is None:
        raise SystemExit("this builder declares no mean / std argument: give the card's preprocessing text with "
                         "--preprocessing")
    return head + (f"per-channel mean/std normalisation inside the model (mean={list(mean)}, std={list(std)} "
                   "in [0, 1] units)")


DATA_LICENSES = {  # the images a card's weights derive from: its --dataset label names them
    "CelebA": "CelebA non-commercial research use only (these weights derive from CelebA images; see the CelebA "
              "licence); code Apache-2.0",
    "MNIST": "Apache-2.0 (weights); MNIST by LeCun, Cortes and Burges",
    "CIFAR-10": "Apache-2.0 (weights); CIFAR-10 images by Krizhevsky et al.",
}


def license_text(dataset, given=None):
    """The card's licence: `given`, else the one of the dataset its label names (cluttered MNIST is
    MNIST: a fixed CIFAR-10 default once put CIFAR-10 on MNIST cards)."""
    if given:
        return given
    named = [text for key, text in DATA_LICENSES.items() if key.lower() in dataset.lower()]
    if len(named) != 1:
        raise SystemExit(f"cannot tell the data licence from --dataset {dataset!r}: pass --license")
    return named[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("name", help="arch.tag, e.g. abn_resnet20.cifar10")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--dataset", required=True, help="dataset label for the card")
    parser.add_argument("--command", required=True, help="the exact training command")
    parser.add_argument("--machine", required=True)
    parser.add_argument("--license", default=None, help="default: from the dataset --dataset names")
    parser.add_argument("--notes", default="")
    parser.add_argument("--preprocessing", default=None, help="the card's preprocessing text (default: from the build)")
    parser.add_argument("--wall-time", default=None, help="text for the card when the saved history is partial")
    parser.add_argument("--url", action="append", default=[], help="download mirror(s) of the weight file")
    parser.add_argument("--default", action="store_true", help="the default tag of its architecture")
    parser.add_argument("--force", action="store_true", help="replace a published file of the same name")
    args = parser.parse_args()
    licence = license_text(args.dataset, args.license)  # before the slow evaluation

    stages = training_stages(args.model_dir)
    config = stages[-1]
    model = zoo.load(args.model_dir)
    metrics = evaluate(model, args.data, split=args.split, progress=False)
    train_config = {k: (None if k in ("checkpoint_dir", "log_dir") else v)  # local paths stay off the card
                    for k, v in config.get("train_config", {}).items()}
    file_name = f"{args.name}.weights.h5"
    target = weights.weights_dir() / file_name
    source = Path(args.model_dir) / hub.WEIGHTS_FILE
    if target.exists() and weights.sha256_of(target) != weights.sha256_of(source) and not args.force:
        raise SystemExit(f"{target} exists with other weights; pass --force to replace it")
    build = {k: v for k, v in config["build"].items() if k not in ("sync_bn",)}
    defaults = inspect.signature(zoo.get_spec(config["arch"]).builder).parameters
    mean = build.get("mean", defaults["mean"].default if "mean" in defaults else None)
    std = build.get("std", defaults["std"].default if "std" in defaults else None)
    card = {
        "dataset": args.dataset,
        "preprocessing": args.preprocessing or preprocessing_text(build, mean, std),
        "class_names": config.get("class_names"),
        "license": licence,
        "command": args.command,
        "objective": config.get("objective"),  # the training objective on top of the family loss, None: none
        "epochs": round(sum(stage["step"] / stage["steps_per_epoch"] for stage in stages), 2),
        "epochs_planned": sum(stage.get("train_config", {}).get("epochs", 0) for stage in stages),
        "steps": sum(stage["step"] for stage in stages),
        "stages": [{key: stage.get("train_config", {}).get(key) for key in ("epochs", "lr", "schedule", "seed")}
                   for stage in stages],
        "wall_time": args.wall_time or wall_time(stages),
        "machine": args.machine,
        "train_config": train_config,
        "accuracy": {**{k: round(v, 4) for k, v in scalar_metrics(metrics, f"{args.split}_").items()
                        if k != f"{args.split}_num_examples"},
                     "num_examples": metrics["num_examples"], "dataset": args.dataset},
        "evaluation_command": f"zoo evaluate {args.name} --data {Path(args.data).name} --split {args.split}",
        "notes": args.notes,
    }
    if "per_attribute_accuracy" in metrics:
        card["per_attribute_accuracy"] = {k: round(v, 4) for k, v in metrics["per_attribute_accuracy"].items()}
    shutil.copyfile(source, target)  # only once the card is complete: a failure leaves weights/ as it was
    manifest = weights.load_manifest()
    manifest[args.name] = {
        "arch": config["arch"],
        "task": config.get("task", "multiclass"),
        "file": file_name,
        "sha256": weights.sha256_of(target),
        "size": target.stat().st_size,
        "urls": args.url,
        "default": args.default,
        "build": build,
        "card": card,
    }
    (weights.weights_dir() / weights.MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(card["accuracy"]))


if __name__ == "__main__":
    main()
