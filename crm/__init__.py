"""Reading the exports of the CRMs a team already has, into deals dealflow can take over.

Pure: parsing, checking and mapping only; nothing here writes anywhere. `app/import_service.py`
turns a checked plan into deals (open deals as workflows at their current stage, closed deals as
history in the log).
"""
