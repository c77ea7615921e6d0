"""Inpainter training: person-shaped holes, photo crops, losses and discriminators, the loop.

``bgclean train --config FILE`` runs ``Trainer(load_train_config(FILE)).run()``.
"""
