"""LLM backends behind one interface (:class:`~firesift.llm.base.LLM`) and their registry.

Built-in backends register exactly as a plugin would, through :func:`register`; a plugin adds
``register(MyBackend)`` and :func:`get` / :func:`from_settings` (and their error messages) pick
it up.

::

    from firesift import llm
    from firesift.llm import ChatMessage, TextDelta

    model = llm.from_settings(settings)        # the "openai" backend: any compatible endpoint
    for event in model.chat([ChatMessage("user", "hello")]):
        if isinstance(event, TextDelta):
            print(event.text, end="")
"""

from __future__ import annotations

from firesift.llm.base import (
    LLM,
    LLMS,
    ChatMessage,
    Completion,
    Finish,
    LLMError,
    LLMEvent,
    LLMNotConfigured,
    LLMTimeout,
    TextDelta,
    ToolCall,
    ToolSpec,
    ToolsUnsupported,
    Usage,
    from_settings,
    get,
    names,
    register,
    unregister,
)
from firesift.llm.openai_compat import OpenAICompatLLM

__all__ = [
    "LLM",
    "LLMS",
    "ChatMessage",
    "Completion",
    "Finish",
    "LLMError",
    "LLMEvent",
    "LLMNotConfigured",
    "LLMTimeout",
    "OpenAICompatLLM",
    "TextDelta",
    "ToolCall",
    "ToolSpec",
    "ToolsUnsupported",
    "Usage",
    "from_settings",
    "get",
    "names",
    "register",
    "unregister",
]

register(OpenAICompatLLM)
