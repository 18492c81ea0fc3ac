"""Speed, memory and data-pipeline benchmarks: the library under ``tools/analysis_tools/benchmark.py``,
``benchmark_table.py`` and ``benchmark_data.py`` (which only parse their command lines) and the building blocks
``tools/analysis_tools/get_flops.py`` and the tests use.

* :mod:`.build`: a model from a config without pretrained weights, random inputs and data samples of the data
  preprocessor's shapes, the timed modules (:class:`TensorCore`, :class:`BackboneForward`);
* :mod:`.timing`: the timing loop, statistics, peak memory, operation counts, the multi-process barrier;
* :mod:`.options` / :mod:`.runner`: a sweep (:class:`BenchmarkOptions`, :func:`run`);
* :mod:`.report`: console lines, per-variant summaries over rounds, the merged markdown table;
* :mod:`.pipeline`: clips/s of a config's data pipeline per data-loader worker.

Needs the model stack (torch, mmengine, mmcv, mmseg); ONNX Runtime only for its ``onnxruntime`` variants.
"""

from .build import (
    AUDIO_SHAPE,
    BackboneForward,
    TensorCore,
    build_model,
    count_params,
    load_config,
    make_data_samples,
    make_inputs,
    num_classes_of,
)
from .options import BenchmarkOptions
from .pipeline import pipeline_throughput
from .report import add_model_over_backbone, merge_reports, summarize_rounds, variant_name, write_json
from .runner import run, run_one, sweep
from .timing import (
    AMP_DTYPES,
    PURE_DTYPES,
    autocast,
    barrier,
    compile_kwargs,
    count_dispatched_ops,
    environment,
    memory_phase,
    percentile,
    summarize,
    synchronize,
    time_steps,
)

__all__ = [
    'AUDIO_SHAPE',
    'AMP_DTYPES',
    'PURE_DTYPES',
    'BenchmarkOptions',
    'TensorCore',
    'BackboneForward',
    'load_config',
    'build_model',
    'num_classes_of',
    'count_params',
    'make_inputs',
    'make_data_samples',
    'autocast',
    'synchronize',
    'barrier',
    'time_steps',
    'percentile',
    'summarize',
    'memory_phase',
    'compile_kwargs',
    'count_dispatched_ops',
    'environment',
    'run',
    'run_one',
    'sweep',
    'add_model_over_backbone',
    'summarize_rounds',
    'variant_name',
    'merge_reports',
    'write_json',
    'pipeline_throughput',
]
