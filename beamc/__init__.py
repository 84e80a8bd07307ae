"""beamc: knowledge-distillation compression, export and streaming runtime for beam prediction."""

__version__ = "0.1.0"
