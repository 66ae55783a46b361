from .restoration_metric import RestorationMetric
from .restoration_visualizer import RestorationVisualizer
from .robustness_metric import PerClassIoUMetric

__all__ = ['PerClassIoUMetric', 'RestorationMetric', 'RestorationVisualizer']
