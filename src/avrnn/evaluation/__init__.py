"""Using a trained checkpoint: bounds (ELBO, IWAE-k, FIVO-k) and reconstruction quality (SI-SDR,
PESQ, ESTOI) on a split, and prior samples and reconstructions as audio."""
