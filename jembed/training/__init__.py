"""The image side's network and how it is trained (paper §3): images -> points in the shapes' space.

model.py        the Flax CNN (paper's CaffeNet or the small CPU network) and its heads
losses.py       the objectives against the shape points
optimizer.py    the optax chain and its schedule
augmentation.py on-device flips and shifts
checkpoints.py  orbax checkpoints: save, restore, resume
run_metrics.py  metrics.jsonl and the loss curve
train.py        `train_and_evaluate(config, workdir)`: the data-parallel loop under shard_map
"""
