"""ET-STPM toolkit: Enhanced-Teacher Student-Teacher Feature Pyramid Matching for unsupervised anomaly detection."""

__version__ = "0.1.0"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
