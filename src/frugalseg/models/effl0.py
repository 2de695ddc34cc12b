"""Pretrained EfficientNet-Lite0 encoder U-Net (filled in by the effl0 module)."""
