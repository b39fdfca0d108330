"""drover: a VM-booting control plane in the spirit of OpenStack Nova."""

__version__ = "0.1.0"
