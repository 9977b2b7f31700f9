"""A local emulator of the DRAW autosegmentation server: the REST API, a real (simple)
segmentation, a valid RTSTRUCT, and faults to switch on. ``dicom-ops emulator`` runs it;
``app.create_app(EmulatorConfig(...))`` builds the ASGI app."""
