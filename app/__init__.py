"""The application layer: one service per context, each a set of functions over a `Context`
(the pool, the Temporal client, the settings, the access configuration), with the access rules
in one place (`permissions`) and no SQL (the statements are in `store/`). The CLI, the web app and
the typed Python client (`client.api`) all call it."""
