"""ET-STPM (Wang et al. 2021, with the ET teacher): a student pyramid distilled from the frozen teacher. Files: model
(teacher + student -> map and score), loss (distillation), anomaly_map (per-level maps), student (training loop),
method (the etstpm.methods protocol)."""
