"""Streams the token callback of a generation (running on another thread, GIL released in C)
into a Python iterator; closing the iterator cancels the generation."""
import queue
import threading

_DONE = object()


class TokenStream:
    """Iterates (token, piece_bytes) pairs of ctx.generate(**kwargs) run on a worker thread.

    After the iteration ends, ``result`` holds the generation's result dict. Exceptions raised
    by the generation are re-raised in the consuming thread."""

    def __init__(self, ctx, lock, prompt, **kwargs):
        self._q = queue.Queue()
        self._cancel = threading.Event()
        self.result = None
        self._error = None

        def on_token(token, piece):
            self._q.put((token, piece))
            return not self._cancel.is_set()

        def run():
            try:
                with lock:
                    self.result = ctx.generate(prompt, callback=on_token, **kwargs)
            except BaseException as e:  # handed to the consumer
                self._error = e
            finally:
                self._q.put(_DONE)

        self._thread = threading.Thread(target=run, name="edgellm-generate", daemon=True)
        self._thread.start()

    def __iter__(self):
        try:
            while True:
                item = self._q.get()
                if item is _DONE:
                    break
                yield item
        finally:
            self._cancel.set()
            self._thread.join()
        if self._error is not None:
            raise self._error
