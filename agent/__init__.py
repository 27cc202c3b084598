"""The voice agent worker: `python -m agent dev | start | console | download-files`.

`agent.worker` is the composition root; each behaviour lives in its own module and is attached to
the session by one call there.
"""
