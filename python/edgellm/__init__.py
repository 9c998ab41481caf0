"""edgellm from Python: the C API (include/edgellm/edgellm.h) through a small pybind11 module.

- ``edgellm.Llama``: the llama-cpp-python surface (``Llama(model_path=..., n_ctx=...)``,
  ``llm(prompt, max_tokens=...)``, ``create_chat_completion``, ``tokenize`` ...), same dict shapes.
- ``edgellm.Model`` / ``edgellm.Session``: a Pythonic API with iterators for streaming.
- ``edgellm.device()``: what ``edgellm device --json`` reports (device, capabilities, memory plan).

Errors from the C API raise ``edgellm.Error`` (a RuntimeError) carrying the C error text and its
status name in ``.status``. Generation releases the GIL.
"""
from . import _edgellm
from ._edgellm import Error

from .llama import Llama
from .session import Model, Session, bench, device

__version__ = _edgellm.version()
API_VERSION = _edgellm.API_VERSION

__all__ = ["Llama", "Model", "Session", "bench", "device", "Error", "__version__", "API_VERSION"]
