"""The attribute models: multi-task ABN, multi-channel attention (+ mask transformation), plain baseline."""

import numpy as np
import pytest
from keras import ops

import zoo
from tests.test_tasks import ATTRIBUTES, toy_attributes
from zoo import data
from zoo.explain import figures
from zoo.models import layers as zl
from zoo.models import multichannel as mc

SIZE = 32
TINY_FACE = {"depth": 8, "width": 4, "num_classes": 3, "input_shape": (SIZE, SIZE, 3)}
ARCHS = ("abn_multitask_faceresnet20", "multichannel_faceresnet20", "plain_faceresnet20")


def tiny(arch, **kwargs):
    extra = {"hidden": 2} if arch.startswith("multichannel") else {}
    model = zoo.build(arch, **{**TINY_FACE, **extra, **kwargs})
    model.zoo_config["class_names"] = ATTRIBUTES
    return model


def images(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3)).astype("float32")


def test_output_shapes_of_every_attribute_model():
    """Maps at the declared resolutions: ABN's at the extractor's (SIZE/8), the multi-channel masks
    at the last stage's (SIZE/16) with one per channel (4 * width) and attribute."""
    expected = {
        "abn_multitask_faceresnet20": {"logits": (2, 3), "attention_logits": (2, 3), "attention": (2, 4, 4, 3)},
        "multichannel_faceresnet20": {"logits": (2, 3), "attention": (2, 2, 2, 16, 3),
                                      "attention_spatial": (2, 2, 2, 3), "channel_importance": (2, 16, 3)},
        "plain_faceresnet20": {"logits": (2, 3)},
    }
    for arch in ARCHS:
        model = tiny(arch)
        assert model.zoo_config["task"] == "multilabel"
        out = model(images())
        assert {k: tuple(v.shape) for k, v in out.items()} == expected[arch], arch
        info = zoo.feature_info(model)
        for name in (info.gradcam_layer, *info.heads):
            model.get_layer(name)


def test_multitask_perception_branch_sees_each_attributes_own_map():
    """Row b * A + i of the gated batch is h_b * M_{b,i} (Chainer's `F.scale(h, att_i)`), inside
    the built model, and the residual mode gives h * (1 + M)."""
    import keras

    for mode, gate in (("multiply", lambda h, m: h * m), ("residual", lambda h, m: h * (1 + m))):
        model = tiny("abn_multitask_faceresnet20", attention_mode=mode)
        probe = keras.Model(model.input, [model.get_layer("stage2_block1_out").output, model.output["attention"],
                                          model.get_layer("attention_gate").output])
        h, maps, gated = (np.asarray(t) for t in probe(images(2)))
        assert gated.shape == (2 * 3, *h.shape[1:])
        for b in range(2):
            for i in range(3):
                np.testing.assert_allclose(gated[b * 3 + i], gate(h[b], maps[b, ..., i : i + 1]), rtol=1e-5,
                                           atol=1e-6)
        assert not np.allclose(maps[..., 0], maps[..., 1])  # different maps, so the pairing is tested


def test_multitask_logit_of_an_attribute_depends_on_its_own_map_only():
    """Changing attribute 0's map changes logit 0 and leaves the other perception logits alone."""
    h = np.random.default_rng(0).normal(size=(1, 4, 4, 8)).astype("float32")
    maps = np.random.default_rng(1).uniform(size=(1, 4, 4, 3)).astype("float32")
    per = zl.PerAttributeDense()
    gate = zl.PerAttributeGate("multiply")
    pooled = lambda m: zl.AttributesFromBatch(3)(ops.mean(gate(h, m), axis=(1, 2)))  # noqa: E731
    before = np.asarray(per(pooled(maps)))
    changed = maps.copy()
    changed[..., 0] *= 0.1
    after = np.asarray(per(pooled(changed)))
    assert not np.allclose(before[:, 0], after[:, 0])
    np.testing.assert_allclose(before[:, 1:], after[:, 1:], rtol=1e-6)


def test_mask_transformations():
    rng = np.random.default_rng(0)
    masks = rng.uniform(0.05, 1.0, (2, 3, 3, 8, 4)).astype("float32")
    for rule in mc.TRANSFORM_RULES:
        np.testing.assert_array_equal(np.asarray(mc.transform_masks(masks, rule, 0.0)), masks)  # identity
    np.testing.assert_array_equal(np.asarray(mc.transform_masks(masks, None, 1.0)), masks)
    np.testing.assert_allclose(np.asarray(mc.transform_masks(masks, "power", 1.0)), masks**2, rtol=1e-6)

    importance = masks.mean(axis=(1, 2))  # (B, C, A)
    top = np.asarray(mc.transform_masks(masks, "top_channels", 1.0, top_fraction=0.25))  # 2 of 8 channels kept
    kept = np.abs(top).sum(axis=(1, 2)) > 0
    assert (kept.sum(axis=1) == 2).all()
    for b in range(2):
        for a in range(4):
            assert set(np.flatnonzero(kept[b, :, a])) == set(np.argsort(-importance[b, :, a])[:2])
    saturated = masks.copy()
    saturated[..., 0] = 0.88  # every channel of attribute 0 ties: still exactly 2 kept, the lowest indices
    tied = np.asarray(mc.transform_masks(saturated, "top_channels", 1.0, top_fraction=0.25)).sum(axis=(1, 2)) > 0
    assert (tied.sum(axis=1) == 2).all()
    assert (np.flatnonzero(tied[0, :, 0]) == [0, 1]).all()
    half = np.asarray(mc.transform_masks(masks, "top_channels", 0.5, top_fraction=0.25))
    np.testing.assert_allclose(half, np.where(kept[:, None, None], masks, 0.5 * masks), rtol=1e-6)

    weighted = np.asarray(mc.transform_masks(masks, "channel_weight", 2.0))
    relative = importance / importance.max(axis=1, keepdims=True)
    np.testing.assert_allclose(weighted, masks * relative[:, None, None] ** 2, rtol=1e-5)
    with pytest.raises(ValueError, match="mask transform rule must be one of"):
        mc.transform_masks(masks, "sharpen", 1.0)


def test_a_loaded_model_takes_a_transformation_and_keeps_its_weights(tmp_path):
    model = tiny("multichannel_faceresnet20")
    zoo.save_model(model, tmp_path / "m")
    x = images(3)
    plain = zoo.load(str(tmp_path / "m"))
    np.testing.assert_allclose(np.asarray(plain(x)["logits"]), np.asarray(model(x)["logits"]), rtol=1e-5)
    identity = zoo.load(str(tmp_path / "m"), mask_transform="top_channels", mask_strength=0.0)
    np.testing.assert_allclose(np.asarray(identity(x)["logits"]), np.asarray(model(x)["logits"]), rtol=1e-5)
    transformed = zoo.load(str(tmp_path / "m"), mask_transform="top_channels", mask_strength=1.0)
    masks = np.asarray(transformed(x)["attention"])
    assert ((masks.sum(axis=(1, 2)) > 0).sum(axis=1) == 4).all()  # ceil(0.25 * 16) channels per attribute
    assert not np.allclose(np.asarray(transformed(x)["logits"]), np.asarray(model(x)["logits"]))


def test_attention_maps_per_attribute_and_per_channel():
    model = tiny("multichannel_faceresnet20")
    x = images(2)
    maps = zoo.attention_maps(model, x, attribute="bluish")
    assert set(maps) == {"attention_spatial/bluish", *(f"attention/bluish/ch{c}" for c in top_channels(model, x))}
    assert all(m.shape == (2, SIZE, SIZE) for m in maps.values())
    every = zoo.attention_maps(model, x, maps="attention_spatial")
    assert set(every) == {f"attention_spatial/{a}" for a in ATTRIBUTES}
    with pytest.raises(ValueError, match="Did you mean: bluish"):
        zoo.attention_maps(model, x, attribute="blueish")
    abn = tiny("abn_multitask_faceresnet20")
    assert set(zoo.attention_maps(abn, x)) == {f"attention/{a}" for a in ATTRIBUTES}
    assert zoo.attention_maps(tiny("plain_faceresnet20"), x) == {}


def top_channels(model, x, attribute=1, count=3):
    importance = np.asarray(model(x)["channel_importance"]).mean(axis=0)[:, attribute]
    return np.argsort(-importance, kind="stable")[:count]


@pytest.mark.parametrize("arch", ARCHS[:2])
def test_attribute_models_learn_a_toy_problem(arch, tmp_path):
    from zoo.training.loop import train
    from zoo.training.recipe import TrainConfig

    images_, attrs = toy_attributes(96, size=SIZE)
    train_source = data.ArraySource(images_[:64], attrs[:64], ATTRIBUTES)
    test_source = data.ArraySource(images_[64:], attrs[64:], ATTRIBUTES)
    config = TrainConfig(epochs=10, batch_size=16, lr=0.05, progress=False, augment=data.AugmentConfig(flip=False))
    build = {k: v for k, v in tiny(arch).zoo_config["build"].items() if k != "num_classes"}
    train(arch, train_source, config, output_dir=tmp_path / "m", build_kwargs=build)
    metrics = zoo.evaluate(zoo.load(str(tmp_path / "m")), test_source, batch_size=16, progress=False)
    assert metrics["mean_accuracy"] >= 0.8 > metrics["majority_baseline"]


@pytest.mark.parametrize("arch", ARCHS[:2])
def test_export_parity_with_probabilities_and_maps(arch, tmp_path):
    import tensorflow as tf

    from zoo import export

    model = tiny(arch)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    x = images(3).astype("uint8")
    expected = {k: np.asarray(v) for k, v in model(x.astype("float32"), training=False).items()}
    expected["probabilities"] = 1 / (1 + np.exp(-expected["logits"]))
    loaded = tf.saved_model.load(str(export.export(model, tmp_path / "sm")))  # keep it: its variables die with it
    served = loaded.serve(tf.constant(x))
    lite = export.tflite_runner(export.export(model, tmp_path / "m.tflite", "tflite"))(image=x)
    for out in (served, lite):
        assert set(out) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(np.asarray(out[key]), value, atol=1e-4 * max(1.0, np.abs(value).max()))
    assert export.read_labels(tmp_path / "m.tflite") == ATTRIBUTES


def test_predict_draws_the_top_attributes_and_the_channel_figures(tmp_path):
    from PIL import Image

    from zoo.prediction import predict_files

    model = tiny("multichannel_faceresnet20")
    path = tmp_path / "face.png"
    Image.fromarray(images(1)[0].astype("uint8")).save(path)
    result = predict_files(model, [path], overlay_dir=tmp_path / "out", threshold=0.0, attribute="bright")[0]
    assert [name for name, _ in result["predictions"]] == sorted(ATTRIBUTES, key=lambda a: -result["probabilities"][a])
    text = {key: zoo.explain.figure_text(result[key]) for key in ("overlay", "channels", "channel_masks")}
    assert text["overlay"]["title"] == "face.png: attributes predicted present" + figures.constant_note(
        [result["attention"][f"attention_spatial/{a}"] for a in ATTRIBUTES])
    assert [p.split(" ")[0] for p in text["overlay"]["panels"][1:]] == [n for n, _ in result["predictions"]]
    assert text["overlay"]["colorbars"] == ["attention_spatial: per attribute\n0-1"]
    assert text["channels"]["colorbars"] == ["channel importance (mean mask value, 0-1)"]
    assert text["channel_masks"]["title"].startswith("face.png, bright: masks of its most important channels")
    assert text["channel_masks"]["colorbars"] == ["attention: channel mask (sigmoid, 0-1)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "face.attention.png", "face.channel_masks.png", "face.channels.png"]
    with pytest.raises(ValueError, match="one mask per channel"):
        predict_files(model, [path], overlay_dir=tmp_path / "out", map_name="attention")
    abn = predict_files(tiny("abn_multitask_faceresnet20"), [path], overlay_dir=tmp_path / "abn")[0]
    assert set(abn) >= {"overlay"} and "channels" not in abn


def write_attribute_folder(folder, names, n=16, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True)
    rows = ["file," + ",".join(names)]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3)).astype("uint8")).save(folder / "img" / f"{i}.png")
        rows.append(f"img/{i}.png," + ",".join(rng.choice(["1", "-1"], len(names))))
    (folder / "attributes.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_finetune_on_a_users_attribute_csv_with_new_names(tmp_path):
    """New attribute names get fresh heads even when their number is the same; the same names in
    another order keep the pretrained heads (labels mapped to the model's order by name)."""
    from zoo.training.finetune import finetune
    from zoo.training.recipe import TrainConfig

    pretrained = tiny("multichannel_faceresnet20")
    zoo.save_model(pretrained, tmp_path / "pre", class_names=ATTRIBUTES)
    frozen_lr = TrainConfig(epochs=1, batch_size=8, lr=0.0, weight_decay=0.0, progress=False)
    new_names = ["Smiling", "Eyeglasses", "Bangs"]
    model, _ = finetune(str(tmp_path / "pre"), str(write_attribute_folder(tmp_path / "new", new_names)),
                        tmp_path / "out_new", frozen_lr)
    assert model.zoo_config["class_names"] == new_names and zoo.load(str(tmp_path / "out_new"))
    assert not np.allclose(model.get_layer("fc").kernel, pretrained.get_layer("fc").kernel)  # fresh head
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel, pretrained.get_layer("stem_conv").kernel)
    same, _ = finetune(str(tmp_path / "pre"), str(write_attribute_folder(tmp_path / "same", ATTRIBUTES[::-1])),
                       tmp_path / "out_same", frozen_lr)
    assert same.zoo_config["class_names"] == ATTRIBUTES
    np.testing.assert_array_equal(same.get_layer("fc").kernel, pretrained.get_layer("fc").kernel)


def test_cli_evaluates_and_compares_transformed_models(tmp_path, capsys):
    import json

    from zoo.cli import main

    zoo.save_model(tiny("multichannel_faceresnet20"), tmp_path / "m", class_names=ATTRIBUTES)
    x, attrs = toy_attributes(10, size=SIZE)
    np.savez(tmp_path / "faces.npz", x=x, attr=attrs.astype("int8"), ids=np.arange(0, 50, 5),
             attr_names=np.array(ATTRIBUTES))
    losses = []
    for i, spec in enumerate((str(tmp_path / "m"), f"{tmp_path / 'm'}@mask_transform=top_channels,mask_strength=1")):
        assert main(["evaluate", spec, "--data", str(tmp_path / "faces.npz"), "--quiet",
                     "--json", str(tmp_path / f"e{i}.json")]) == 0
        losses.append(json.loads((tmp_path / f"e{i}.json").read_text())["loss"])
    assert losses[0] != pytest.approx(losses[1])
    transformed = f"{tmp_path / 'm'}@mask_transform=power,mask_strength=2"
    assert main(["robustness", str(tmp_path / "m"), "--data", str(tmp_path / "faces.npz"), "--compare", transformed,
                 "--compare", f"{tmp_path / 'm'}@mask_transform=channel_weight,mask_strength=1", "--attacks", "noise",
                 "--sigmas", "0", "8", "--json", str(tmp_path / "r.json")]) == 0
    assert len(json.loads((tmp_path / "r.json").read_text())) == 3 and transformed in capsys.readouterr().out
    assert main(["evaluate", f"{tmp_path / 'm'}@mask_transform=blur", "--data", str(tmp_path / "faces.npz")]) == 2
    assert "mask_transform must be one of" in capsys.readouterr().err


def test_every_attribute_present_is_shown_not_the_first_five(tmp_path, capsys):
    """Before: zoo predict showed 5 attributes although 11 were at or above 0.5 (Smiling hidden)."""
    from PIL import Image

    from zoo import tasks
    from zoo.cli import main

    names = [f"attr{i}" for i in range(14)]
    probabilities = np.linspace(0.95, 0.3, 14)  # 10 at or above 0.5 (0.95, 0.90, ..., 0.50)
    shown = tasks.get_task("multilabel").describe(probabilities, names, top_k=5)
    assert [n for n, _ in shown] == names[:10]
    model = zoo.build("abn_multitask_faceresnet20", **{**TINY_FACE, "num_classes": 14})
    zoo.save_model(model, tmp_path / "m", class_names=names)
    Image.fromarray(images(1)[0].astype("uint8")).save(tmp_path / "face.png")
    assert main(["predict", str(tmp_path / "face.png"), "--model", str(tmp_path / "m"), "--threshold", "0",
                 "--overlay-dir", str(tmp_path / "ov")]) == 0
    printed = capsys.readouterr().out
    assert all(f"  {name}\n" in printed for name in names)  # all 14 at or above the threshold 0, not 5
    panels = zoo.explain.figure_text(tmp_path / "ov" / "face.attention.png")["panels"]
    assert len(panels) == 15  # the input and all 14 maps, none left out (in rows of up to 6)
    figure = Image.open(tmp_path / "ov" / "face.attention.png")
    assert figure.size[1] > 2.5 * 192  # 3 rows


def test_a_prediction_does_not_depend_on_the_other_images_of_its_batch():
    """The per-channel masks shown are each image's own top channels, not the batch's: one image
    predicted alone or among others (one batch or several) gives the same result."""
    model = tiny("multichannel_faceresnet20")
    images = np.random.default_rng(5).integers(0, 255, (3, SIZE, SIZE, 3)).astype("uint8")
    together = zoo.predict(model, images, threshold=0.0)
    alone = [zoo.predict(model, image[None], threshold=0.0)[0] for image in images]
    assert any(set(a["attention"]) != set(b["attention"]) for a, b in zip(alone, alone[1:]))  # the test can tell
    for a, b in zip(together, alone):
        assert set(a["attention"]) == set(b["attention"])
        for key in a["attention"]:
            np.testing.assert_allclose(a["attention"][key], b["attention"][key], atol=1e-5)
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), rtol=1e-5)
