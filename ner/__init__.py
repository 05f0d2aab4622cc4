"""Named-entity extraction that is always schema-valid and grounded in the input text."""

from ner.schema import ENTITY_FIELDS, Entities, EntitySpan, EntityType, Extraction

__all__ = ["ENTITY_FIELDS", "Entities", "EntitySpan", "EntityType", "Extraction"]
