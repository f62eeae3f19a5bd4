"""The CDK app of Collab: one stack built from constructs that follow the architecture.

``app.py`` is the entry point (``make synth``, ``npx cdk synth``); ``stack.py`` wires
``network`` -> ``data`` -> ``migrations`` -> ``realtime`` / ``http_api`` -> ``observability``.
"""
