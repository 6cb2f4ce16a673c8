"""Memory-bank detector (PatchCore, Roth et al. 2022) on the teacher pyramid: no training, a nearest-neighbour bank of
normal patch features. Files: features (patch embedding), coreset (bank selection), model (map and score), fit,
kfold (leave-fold-out calibration scores), method (the etstpm.methods protocol)."""
from .coreset import greedy_coreset
from .features import PatchFeatures
from .fit import MembankConfig, fit_bank
from .model import MemoryBankModel

__all__ = ["MembankConfig", "MemoryBankModel", "PatchFeatures", "fit_bank", "greedy_coreset"]
