"""The command line: parsing and output only; every use case is a call of the application layer
(`app/`), and the servers it starts are composed in `app.composition`."""
