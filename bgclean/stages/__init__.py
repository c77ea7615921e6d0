"""Pipeline stages: each a class built once from its config, called on tensors."""
