"""Training: the LightningModule and its phase table (Algorithms 1-2), the run (`fit.train`), and the
mechanics around the steps: optimizers, step guards and sizes, precision and denormals, CUDA graphs,
checkpoints and resuming, callbacks, Optuna objectives, the end-of-run summary."""
