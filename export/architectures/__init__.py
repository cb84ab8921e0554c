"""Architectures defined here, so torchvision and timm are never needed."""
