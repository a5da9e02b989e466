"""Every read and write of pixels: images, video frames, encoding, audio, atomic writes."""
