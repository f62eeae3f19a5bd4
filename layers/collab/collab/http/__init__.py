"""The HTTP API (contract section 4): ``api`` is the entry point, ``*_routes`` one router per
resource, ``routing``/``responses``/``schemas`` what the routes share."""
