"""Training: base-model resolution and torchtune-style recipes (explicit, no BaseTrainer)."""
