"""Rendering: the sandboxed Jinja2 templates (``renderer``) and the messages a notice's facts
make, per language, patient and template (``messages``)."""
