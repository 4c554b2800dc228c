"""Data: image I/O, blur-kernel generator, sharp-image sources, synthetic and paired datasets."""
