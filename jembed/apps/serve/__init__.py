"""The local browser demo (launch/serve.py): a trained workdir behind a Gradio page."""
