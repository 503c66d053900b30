"""Avatar Studio UI (Gradio): tabs in ``studio.app``, thin handlers in ``studio.handlers``.

Only this package imports gradio; everything it does goes through the ``pipeline`` facade.
"""
