"""The stages of the request path, one module each (the order is in ``pipeline.build``)."""
