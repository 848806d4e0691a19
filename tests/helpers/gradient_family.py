"""A test-only family whose loss needs the gradient of the class score with respect to an inner
feature map inside the train step (what Sharpen Focus needs), and a check of one step of it:
``python -m tests.helpers.gradient_family`` prints the measured and the closed-form update."""

import json
import sys

import keras
import numpy as np

NAME = "test_gradient_penalty"


def builder(num_classes=2, input_shape=(8, 8, 3), name=None):
    """features A = conv(x) (the tap), logits = W^T mean_hw(A) + b."""
    inputs = keras.Input(input_shape)
    features = keras.layers.Conv2D(4, 3, padding="same", name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    logits = keras.layers.Dense(num_classes, name="fc")(pooled)
    return keras.Model(inputs, {"logits": logits}, name=name)


def penalty_loss(y_true, outputs, task, label_smoothing=0.0):
    """sum over positions and channels of (d score_y / d A)^2 = sum_c W[c, y]^2 / (h w)."""
    gradient = outputs["gradients/tap/true"]
    return keras.ops.sum(keras.ops.square(gradient), axis=(1, 2, 3))


def register():
    from zoo import registry

    if NAME not in registry.list_models():
        info = registry.FeatureInfo("features", None, (), ("fc",), ())
        tap = registry.GradientRequest(taps=(("tap", "features"),), second_order=True)
        registry.register_model(NAME, "test", builder, penalty_loss, lambda config: info, gradients=tap, num_classes=2,
                                input_shape=(8, 8, 3))
    return NAME


def one_step(engine):
    """One SGD step (lr 0.5, no momentum or decay) on the penalty alone: returns W before/after and
    the labels. Closed form: W'[c, k] = W[c, k] (1 - lr * 2 n_k / (B h w))."""
    from zoo.data import ArraySource, AugmentConfig
    from zoo.training.recipe import TrainConfig

    register()
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (8, 8, 8, 3)).astype("uint8"), np.array([0, 1, 1, 1, 0, 1, 1, 1])
    config = TrainConfig(epochs=1, batch_size=8, lr=0.5, momentum=0.0, weight_decay=0.0, max_steps=1,
                         progress=False, augment=AugmentConfig(crop_padding=0, flip=False))
    import zoo

    keras.utils.set_random_seed(0)
    start = zoo.build(NAME)
    w0 = keras.ops.convert_to_numpy(start.get_layer("fc").kernel).copy()

    def make():
        return start

    source = ArraySource(images, labels, ["a", "b"])
    if engine == "loop":
        from zoo.training.loop import Trainer

        trainer = Trainer(make, source, config)
        trainer.fit()
        model = trainer.model
    else:
        from zoo.training.fit import fit

        model, _ = fit(make, source, config)
    w1 = keras.ops.convert_to_numpy(model.get_layer("fc").kernel)
    counts = np.bincount(labels, minlength=2)
    expected = w0 * (1 - 0.5 * 2 * counts[None, :] / (len(labels) * 8 * 8))
    return w0, w1, expected


def abn_with_gradcam_loss():
    """A tiny ABN whose loss adds the mean squared Grad-CAM gradient of its last stage (BatchNorm
    inside the differentiated head); returns the epoch losses of a short fit run."""
    import zoo
    from tests.conftest import toy_images
    from zoo import registry
    from zoo.training.fit import fit
    from zoo.training.recipe import TrainConfig

    spec = zoo.get_spec("abn_resnet20")

    def loss(y, outputs, task, **kwargs):
        return keras.ops.mean(keras.ops.square(outputs["gradients/tap/true"]), axis=(1, 2, 3)) + spec.loss(
            y, outputs, task, **kwargs)

    registry.register_model("test_abn_gradcam", "test", spec.builder, loss, spec.feature_info,
                            gradients=registry.GradientRequest(taps=(("tap", "gradcam"),), second_order=True), depth=8,
                            width=4, num_classes=2, input_shape=(16, 16, 3))
    images, labels = toy_images(32, size=16)
    _, history = fit("test_abn_gradcam", (images, labels), TrainConfig(epochs=2, batch_size=16, progress=False))
    return history["loss"]


if __name__ == "__main__":
    from tests.helpers.other_backend import BlockTensorFlow

    sys.meta_path.insert(0, BlockTensorFlow())
    w0, w1, expected = one_step("fit")
    print(json.dumps({"backend": keras.backend.backend(), "max_error": float(np.max(np.abs(w1 - expected))),
                      "moved": float(np.max(np.abs(w1 - w0))), "abn_losses": abn_with_gradcam_loss()}))
