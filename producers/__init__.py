"""Registrar side of the bus: submissions validated, turned into life events and published."""
