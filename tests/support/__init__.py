"""Test helpers shared by every tier, in one place: the fake channel at our own seam
(``channels``), the served HTTP app (``web``), ``notifier`` as a subprocess (``processes``),
generated patient lists (``patients``) and readers of what the database recorded
(``records``)."""
