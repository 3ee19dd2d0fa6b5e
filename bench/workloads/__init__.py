"""The workloads of issue 5, one module each; `base` is what they share."""
