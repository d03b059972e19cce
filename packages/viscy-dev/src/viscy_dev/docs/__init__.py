"""The documentation site's tools: API pages from ``__all__``, the docstring check, the build.

* :mod:`viscy_dev.docs.api_pages`: one reference page per package, one entry per public name.
* :mod:`viscy_dev.docs.docstrings`: every public class and function documents its parameters.
* :mod:`viscy_dev.docs.build`: both checks, then ``zensical build --strict``; any warning fails.
* :mod:`viscy_dev.docs.figures`: reruns the demos and refreshes the figures in Getting started.

Run ``uv run python -m viscy_dev.docs {build,api,docstrings,figures}``.
"""
