"""A-VRNN: a variational RNN for speech whose prior and posterior are matched by an adversarial critic.

Packages, each importing only those before it: models (the maths, plain torch), data (reading,
framing, batching), analysis (figures, reports, probes of trained models), training (the
LightningModule, its phase table and the run), evaluation (bounds, reconstruction quality and audio
from a checkpoint). config (schemas and validation), registry (the classes a config may name) and
cli (one-line errors) wire them together.
"""
