from .eim import EIM

__all__ = ['EIM']
