from .ccformer import CCFormer

__all__ = ['CCFormer']
