"""Development tools of the VisCy workspace (not published).

* :mod:`viscy_dev.api_fixtures`: the published 0.1.0 API, parsed from the spec Markdown into
  JSON fixtures (``python -m viscy_dev.api_fixtures SPEC.md SECTION ...``).
* :mod:`viscy_dev.api_checks`: the checks of those fixtures against our code, and
  ``ConformanceTests``, the test class every package's ``tests/test_api_spec.py`` subclasses.
"""
