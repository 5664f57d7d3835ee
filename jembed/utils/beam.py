"""Apache Beam, optional: the runner and its options from their command-line form, and running a pipeline to its end.

The shape side's descriptors (`embedding.beam_descriptors`) and the dataset (`data.beam_build`) both run on Beam;
this is their one way in. `beam` is None without the `beam` extra, so the single-host paths import this freely.
"""

import shlex

try:
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
except ImportError:  # the single-host builds need none of this module
  beam = None


def require_beam() -> None:
  if beam is None:
    raise ValueError('--beam_runner needs Apache Beam: pip install -e ".[beam]" (or pip install apache-beam)')


def runner_and_options(runner: str, pipeline_options: str):
  """Beam's runner (a name, or the Python runner for 'DirectRunner') and options from their command-line form."""
  require_beam()
  options = beam.options.pipeline_options.PipelineOptions(shlex.split(pipeline_options))
  if runner == "DirectRunner":
    # Beam's DirectRunner first tries its Go 'Prism' runner, whose binary it downloads at run time (no network here;
    # a 10 s stall, then a fallback): go straight to the Python runner it falls back to, the same engine.
    from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=g-import-not-at-top

    return fn_runner.FnApiRunner(), options
  return runner, options


def run_pipeline(build, runner: str, pipeline_options: str = "") -> None:
  """Builds a pipeline with `build(pipeline)` and runs it to the end on `runner` (as `prepare` does)."""
  runner, options = runner_and_options(runner, pipeline_options)
  with beam.Pipeline(runner=runner, options=options) as pipeline:
    build(pipeline)
