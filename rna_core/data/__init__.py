"""Data: the bundled Fashion-MNIST subset, readers for published formats, and batching."""

from .datasets import ArrayDataset, ImageFolderDataset, load_bundled, load_dataset
from .formats import DataFormatError
from .loader import batches, random_crop_flip

__all__ = ["ArrayDataset", "DataFormatError", "ImageFolderDataset", "batches", "load_bundled", "load_dataset",
           "random_crop_flip"]
