"""Robustness evaluation: attacks stay in budget and accuracy moves the right way on a toy model."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY
from zoo import robustness as zr
from zoo.training.loop import TrainConfig, Trainer


@pytest.fixture(scope="module")
def trained_toy():
    from tests.conftest import toy_images
    from zoo.data import ArraySource

    images, labels = toy_images(128, seed=2)
    source = ArraySource(images, labels, ["red", "blue"])
    config = TrainConfig(epochs=4, batch_size=16, lr=0.1, progress=False, seed=0)
    trainer = Trainer("abn_resnet20", source, config, build_kwargs={"input_shape": (16, 16, 3), **TINY})
    trainer.fit()
    test_images, test_labels = toy_images(64, seed=3)
    return trainer.model, ArraySource(test_images, test_labels, ["red", "blue"])


def test_attacks_respect_the_budget_and_pixel_range(trained_toy):
    model, source = trained_toy
    x = tf.constant(source.images[:8].astype("float32"))
    y = tf.constant(source.labels[:8])
    def loss(images):
        logits = model(images, training=False)["logits"]
        return float(tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))

    for attack in ("fgsm", "pgd"):
        adv = zr.perturb(model, attack, x, y, 4.0, pgd_steps=3, seed=0)
        change = tf.abs(adv - x)
        assert float(tf.reduce_max(change)) <= 4.0 + 1e-4
        assert float(tf.reduce_min(adv)) >= 0 and float(tf.reduce_max(adv)) <= 255
        assert float(tf.reduce_max(change)) >= 4.0 - 1e-3  # it uses the budget (an identity "attack" fails)
        assert loss(adv) > 1.5 * loss(x), attack  # and it raises the loss it attacks
    np.testing.assert_array_equal(zr.perturb(model, "fgsm", x, y, 0.0, 3, 0), x)


def test_accuracy_falls_with_attack_strength_and_pgd_is_stronger(trained_toy, tmp_path):
    model, source = trained_toy
    results = zr.robustness(model, source, epsilons=(0, 8, 32), sigmas=(0, 64), pgd_steps=3, batch_size=32,
                            max_examples=32)
    fgsm, pgd, noise = results["fgsm"], results["pgd"], results["noise"]
    assert fgsm[0] == pgd[0] == noise[0] >= 0.9  # clean accuracy of the toy model
    assert fgsm[0] >= fgsm[8] >= fgsm[32] and fgsm[32] < fgsm[0]
    assert pgd[32] <= fgsm[32]
    assert noise[64] <= noise[0]
    table = zr.format_table({"toy": results, "same": results})
    assert "| fgsm | 32 |" in table and len(table.splitlines()) == 2 + 3 + 3 + 2  # header + 8 rows
    plot = zr.plot_curves({"toy": results}, tmp_path / "curve.png")
    assert plot.stat().st_size > 5000
    with pytest.raises(FileExistsError, match="force"):  # an existing figure is replaced only on request
        zr.plot_curves({"toy": results}, plot)
    assert zr.plot_curves({"toy": results}, plot, force=True).stat().st_size > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]  # no scratch file left


def test_the_compiled_folded_gradient_is_the_eager_one(trained_toy):
    """What robustness() attacks with (a tf.function of the model with its batch norms folded)
    computes the eager tape's gradient of the unfolded model, so the attacks are the same."""
    import zoo

    model, source = trained_toy
    x = tf.constant(source.images[:8].astype("float32"))
    y = tf.constant(source.labels[:8])
    eager = np.asarray(zr.input_gradient(model, x, y))
    compiled = np.asarray(zr.compiled_input_gradient(zoo.fold_batch_norm(model))(x, y))
    assert np.abs(eager).max() > 0
    np.testing.assert_allclose(compiled, eager, atol=1e-4 * np.abs(eager).max())
    agree = np.mean(np.sign(compiled) == np.sign(eager))
    assert agree > 0.99, agree
    same = np.isclose(zr.fgsm(model, x, y, 4.0, gradient=zr.compiled_input_gradient(model)), zr.fgsm(model, x, y, 4.0))
    assert same.mean() > 0.99  # the same attack, but where a gradient is within rounding of zero
