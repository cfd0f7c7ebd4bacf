"""Structural validation of incoming FHIR R4 resources (see ``structure.py``) and request limits (``limits.py``)."""

from fhir_server.validation.limits import check_depth
from fhir_server.validation.structure import validate_structure

__all__ = ["check_depth", "validate_structure"]
