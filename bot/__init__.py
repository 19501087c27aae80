"""forge: the ClientForge ChatOps bot."""

__version__ = "0.1.0"
