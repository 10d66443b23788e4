"""mw-features-3 extraction and vectors as they were before the speed work (3f0e7df).

Frozen on purpose: tests/unit/training/test_training_vectors_identity.py checks that
today's training.features gives exactly these rows (and so exactly these scores) for
every message. Do not edit; the shipped model was trained on what this code computes.
"""
