"""Training: target assignment, losses, augmentation, the train/val loop (single process and DDP).

Import submodules directly (`from edgepose.train.loop import train`); this package imports nothing heavy.
"""
