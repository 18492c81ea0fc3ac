from .avs_metric import AVSBenchMetric
from .avss_metric import AVSSMetric

__all__ = ['AVSBenchMetric', 'AVSSMetric']
