"""nst-batch: batch neural style transfer (Gatys et al. 2015) over image folders and videos."""

__version__ = "0.1.0"
