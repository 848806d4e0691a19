"""Our explainers against the libraries users know (installed with ``.[test]``, so CI runs them):
Grad-CAM and Grad-CAM++ against tf-keras-vis 0.8.7, Grad-CAM against tf-explain 0.3.1, and the input
gradient under SmoothGrad and Integrated Gradients against both, on the same model and layer.
Both libraries get the single-output logits view of the zoo model (neither takes dict outputs)."""

import keras
import numpy as np
import pytest
import tf_keras_vis  # noqa: F401  (part of .[test]: a missing install fails here instead of skipping)

import zoo
from tests.conftest import TINY
from zoo.explain import methods


@pytest.fixture(scope="module")
def setup():
    model = zoo.build("abn_resnet20", num_classes=3, input_shape=(16, 16, 3), **TINY)
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    targets = np.array([0, 1, 2, 1])
    view = keras.Model(model.input, model.output["logits"])
    features, gradient = methods.layer_gradient(model, images, targets)
    return model, view, images, targets, features, gradient


def test_gradcam_and_gradcam_plus_plus_agree_with_tf_keras_vis(setup):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore

    model, view, images, targets, features, gradient = setup
    layer = zoo.feature_info(model).gradcam_layer  # a ReLU: tell tf-keras-vis not to seek a conv layer instead
    kwargs = {"penultimate_layer": layer, "seek_penultimate_conv_layer": False, "expand_cam": False,
              "normalize_cam": False}
    theirs = np.asarray(Gradcam(view)(CategoricalScore(list(targets)), images, **kwargs))
    ours = np.asarray(methods.gradcam_from(features, gradient))
    assert ours.max() > 0.05
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * ours.max())
    score = np.asarray(view(images))[np.arange(4), targets]
    theirs_pp = np.asarray(GradcamPlusPlus(view)(CategoricalScore(list(targets)), images, **kwargs))
    ours_pp = np.asarray(methods.gradcam_plus_plus_from(features, gradient, score))
    np.testing.assert_allclose(ours_pp, theirs_pp, rtol=1e-4, atol=1e-5 * ours_pp.max())
    ours_up = zoo.explain.explain(model, images, ("gradcam",), target=targets)["gradcam"]
    theirs_up = np.asarray(Gradcam(view)(CategoricalScore(list(targets)), images, penultimate_layer=layer,
                                         seek_penultimate_conv_layer=False))
    # same map, other upsampling (half-pixel bilinear vs scipy.ndimage.zoom with aligned corners): r = 0.93 here
    assert np.corrcoef(ours_up.ravel(), theirs_up.ravel())[0, 1] > 0.9


def test_input_gradient_agrees_with_tf_keras_vis_saliency(setup):
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    model, view, images, targets, _, _ = setup
    theirs = np.asarray(Saliency(view)(CategoricalScore(list(targets)), images, normalize_map=False))
    ours = np.abs(methods.input_gradient(model, images, targets)).max(axis=-1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * ours.max())


def test_gradcam_agrees_with_tf_explain_on_the_logits_view(setup):
    pytest.importorskip("cv2", reason="tf-explain needs OpenCV")
    from tf_explain.core.grad_cam import GradCAM

    model, view, images, _, _, _ = setup
    layer = zoo.feature_info(model).gradcam_layer
    outputs, grads = GradCAM.get_gradients_and_filters(view, images, layer, 1, use_guided_grads=False)
    theirs = np.maximum(np.asarray(GradCAM.generate_ponderated_output(outputs, grads)), 0)  # no ReLU in theirs
    ours = np.asarray(methods.gradcam_from(*methods.layer_gradient(model, images, np.ones(4, int))))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * ours.max())
    with pytest.raises(TypeError, match="unhashable type"):  # tf-explain indexes the outputs: a dict (attention) model
        GradCAM.get_gradients_and_filters(model, images, layer, 1, use_guided_grads=False)
