"""The training machinery under train.py (one module per concern):

- :mod:`training.config`: the training config's schema, overrides and value checks;
- :mod:`training.loop`: :func:`~training.loop.train` — build, restore, then step, log, validate, checkpoint;
- :mod:`training.step`: the training forward pass (what DDP wraps), the losses, one optimizer step;
- :mod:`training.state`: the experiment's files, resume (weights, optimizer, RNG, sampler), checkpoints;
- :mod:`training.logging`: console, train.log and tensorboard.
"""
