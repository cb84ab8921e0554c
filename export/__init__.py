"""edge-inspect workstation toolchain (torch): turns models into bundles that ``edge/`` runs."""

__version__ = "0.1.0"
