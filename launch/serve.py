r"""A local browser demo of a trained run: a photo -> its 3D shapes, seen in 3D and over the photo at its pose.

  pip install -e ".[serve]"
  python -m launch.serve --workdir=/tmp/jembed              # then open http://127.0.0.1:7860
  python -m launch.serve --workdir=/tmp/jembed --port=8080

Everything is served from this machine (no CDN, no telemetry). A workdir without a trained network gives a page that
says which launcher to run.
"""

import sys

from absl import app
from absl import flags

from launch import common

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A trained run's folder (launch/demo.py or launch/train.py).", required=True
)
_PORT = flags.DEFINE_integer("port", 7860, "Port to serve on.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0 shows the page to the network).")
_MAX_BATCH = flags.DEFINE_integer(
    "max_batch",
    16,
    "Uploads answered together at most (one forward pass); 1 answers each upload on its own.",
    lower_bound=1,
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  common.log_devices()
  with common.user_errors():
    try:
      # Lazy: gradio is the optional `serve` extra, and a missing one gets the install line below.
      from jembed.apps.serve import app as serve_app  # pylint: disable=g-import-not-at-top
    except ModuleNotFoundError as e:
      sys.exit(f'error: the demo needs the serve extra ({e}): pip install -e ".[serve]"')
    page = serve_app.build(_WORKDIR.value, max_batch=_MAX_BATCH.value)
    print(f"jembed demo of {_WORKDIR.value}: http://{_HOST.value}:{_PORT.value}  (Ctrl-C stops it)", flush=True)
    serve_app.serve(page, _HOST.value, _PORT.value)


if __name__ == "__main__":
  common.run(main)  # with quiet logging: no orbax INFO or httpx request lines in the page's log
