"""The HTTP API: OpenAI-compatible ``/v1``, REST and live ``/api``, the web page.

:func:`~firesift.api.app.create_app` assembles the ASGI app around a
:class:`~firesift.service.Service`; :mod:`firesift.api.server` runs it on uvicorn.
"""

from __future__ import annotations
