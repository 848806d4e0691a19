"""Two tiny tensorflow-datasets builders that generate their examples locally (no download), in a
package module as real tfds datasets are: a class-labelled one and a celeb_a-like attributes one."""

import numpy as np
import tensorflow_datasets as tfds


class ToyShapes(tfds.core.GeneratorBasedBuilder):
    """12 train / 4 test 8x8 images labelled square or circle."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(8, 8, 3)),
                                                 "label": tfds.features.ClassLabel(names=["square", "circle"])}),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(12), "test": self._generate_examples(4)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"image": np.full((8, 8, 3), 20 * i, np.uint8), "label": i % 2}


class ToyAttributes(tfds.core.GeneratorBasedBuilder):
    """6 train / 4 test images with celeb_a's layout: an ``attributes`` dict of booleans."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        attributes = tfds.features.FeaturesDict({"Bald": np.bool_, "Smiling": np.bool_})
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(8, 8, 3)),
                                                 "attributes": attributes}),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(6), "test": self._generate_examples(4)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"image": np.full((8, 8, 3), 30 * i, np.uint8),
                      "attributes": {"Bald": i % 2 == 1, "Smiling": i % 4 != 0 and i % 4 != 2 or i == 3}}
