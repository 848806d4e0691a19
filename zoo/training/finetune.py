"""Fine-tune a pretrained zoo model on the user's own images (``zoo finetune``).

The pretrained model is loaded with new heads for the data's classes or attributes (the layers
its architecture declares as heads, :class:`zoo.registry.FeatureInfo`, start fresh; every other
layer keeps its pretrained weights, copied by name), the feature extractor is optionally frozen
(the declared ``feature_layers``), and the model is trained by the same training core as
from-scratch training, then saved with its label names so that ``zoo.load(output)`` and
``zoo predict --model output`` work.
"""

from typing import Optional

from zoo import data as zdata
from zoo import hub, registry
from zoo.training import loop as ztrain

# what a fine-tuned model does not inherit from the model it starts from
NOT_INHERITED = ("frozen_layers", "history", "history_fit", "train_config", "step", "steps_per_epoch",
                 "reheaded_from")


def freeze_feature_extractor(model):
    """Make the declared feature-extractor layers non-trainable (their BN runs in inference mode).

    Returns the names of the frozen layers.
    """
    prefixes = registry.feature_info(model).feature_layers
    frozen = [layer.name for layer in model.layers if layer.name.startswith(prefixes)]
    for layer in model.layers:
        if layer.name in frozen:
            layer.trainable = False
    return frozen


def finetune(
    pretrained,
    data,
    output_dir,
    config: Optional[ztrain.TrainConfig] = None,
    freeze=False,
    test_data=None,
    strategy=None,
    resume=False,
    split="train",
    test_split="test",
    val_split=None,
    force=False,
):
    """Fine-tune `pretrained` (a name ``zoo.load`` accepts) on `data`; returns (model, history).

    `data` is anything :func:`zoo.data.open_source` takes (a class-per-folder directory, a folder
    with an ``attributes.csv``, an ``.npz``, a tfds name, a source); its task (single- or
    multi-label) becomes the model's. The declared heads start fresh unless the data has exactly
    the pretrained model's classes or attributes (by name, in any order). With ``config.keep_best``
    the epoch with the best accuracy on `val_split` of `data` is saved. An existing model in
    `output_dir` is replaced only with `force`. Defaults: 10 epochs, lr 0.01, cosine schedule.
    """
    config = config or ztrain.TrainConfig(epochs=10, lr=0.01)
    hub.check_model_output(output_dir, force)  # before any work: an existing model only with force
    pretrained_config, _ = hub.read_config(pretrained)
    image_size = pretrained_config.get("image_size") or pretrained_config["build"]["input_shape"][:2]
    image_size = tuple(size or 32 for size in image_size)  # a dynamic-size model: CIFAR-sized by default
    source = zdata.open_source(data, split, image_size)
    pretrained_names = pretrained_config.get("class_names") or []
    same_labels = sorted(pretrained_names) == sorted(source.class_names)
    if same_labels and list(pretrained_names) != list(source.class_names):  # same labels, another order: the model's
        source = zdata.open_source(data, split, image_size, class_names=pretrained_names)
    test_source = None
    if test_data is not None:
        test_source = zdata.open_source(test_data, test_split, image_size, source.class_names)
    val_source = zdata.open_source(data, val_split, image_size, source.class_names) if val_split else None
    if val_split and val_split == test_split and test_data is not None:
        raise ValueError(f"the validation and test splits are both {val_split!r}")

    def make_model():
        model = hub.load(pretrained, num_classes=len(source.class_names), task=source.task,
                         reset_heads=not same_labels)
        for key in NOT_INHERITED:
            model.zoo_config.pop(key, None)
        model.zoo_config["class_names"] = list(source.class_names)
        model.zoo_config["finetuned_from"] = pretrained_config.get("pretrained", str(pretrained))
        model.zoo_config["frozen_layers"] = freeze_feature_extractor(model) if freeze else []
        return model

    trainer = ztrain.Trainer(make_model, source, config, test_source, strategy, val_data=val_source)
    history = trainer.fit(resume=resume)
    if ztrain.is_chief(trainer.strategy):
        extra = {**trainer.run_summary(history), "image_size": list(image_size)}
        hub.save_model(trainer.model, output_dir, extra=extra, force=force)
    return trainer.model, history
