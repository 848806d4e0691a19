"""Training: one core, two engines.

- :mod:`zoo.training.recipe`: the hyper-parameters of a run (:class:`TrainConfig`), schedules, precision.
- :mod:`zoo.training.core`: the backend-agnostic core (loss by task, weight decay, metrics, loss hooks).
- :mod:`zoo.training.loop`: the custom loop under ``tf.distribute`` (TensorFlow).
- :mod:`zoo.training.fit`: ``model.fit`` on any Keras backend (JAX on GPU machines).
- :mod:`zoo.training.finetune`: new heads for the user's own data.
"""
