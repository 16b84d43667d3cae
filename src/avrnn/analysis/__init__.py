"""Reading runs: the paper's figures from TensorBoard logs, sweep reports, and research probes
(diagnostics) on trained models. Nothing here trains."""
